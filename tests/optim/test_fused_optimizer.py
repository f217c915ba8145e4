"""AdamW is built fused (one kernel per device/dtype) and updates as the per-tensor loop does."""

from __future__ import annotations

import torch
from torch import nn

from sslkit.optim import build_optimizer, param_groups


def test_adamw_is_fused_and_matches_the_loop_implementation() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.Linear(32, 4))
    loop_model = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.Linear(32, 4))
    loop_model.load_state_dict(model.state_dict())
    opt = build_optimizer("adamw", param_groups({"m": model}, 0.05), lr=1e-2)
    loop = torch.optim.AdamW(param_groups({"m": loop_model}, 0.05), lr=1e-2, betas=(0.9, 0.95), foreach=False)
    assert opt.defaults["fused"]
    before = model[0].weight.detach().clone()
    x = torch.randn(8, 16)
    for _ in range(3):
        for m, o in ((model, opt), (loop_model, loop)):
            m(x).square().mean().backward()
            o.step()
            o.zero_grad()
    for a, b in zip(model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(model[0].weight, before)
