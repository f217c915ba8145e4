"""SimCLR: the loss is lightly's NT-Xent; a real two-step fit on shards."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss

from sslkit.objectives import SimCLR, load_objective
from sslkit.transforms import SimCLRViews
from tests.conftest import TINY_VIT


def _ntxent_formula(z_a: torch.Tensor, z_b: torch.Tensor, t: float) -> torch.Tensor:
    """NT-Xent from the paper's Eq. 1, written out: 2N anchors, positives across views."""
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    n = z_a.shape[0]
    sim = z @ z.T / t
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, targets)


def test_simclr_loss_is_lightlys_and_the_papers() -> None:
    torch.manual_seed(0)
    model = SimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, temperature=0.3)
    z_a, z_b = torch.randn(6, 128), torch.randn(6, 128)
    ours = model.criterion(z_a, z_b)
    assert torch.allclose(ours, NTXentLoss(temperature=0.3)(z_a, z_b))
    assert torch.allclose(ours, _ntxent_formula(z_a, z_b, 0.3), atol=1e-6)


def test_simclr_two_step_fit_and_safe_reload(fit_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = SimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64,
                   proj_output_dim=32, warmup_epochs=0)
    before = [p.detach().clone() for p in model.backbone.parameters()]
    views = SimCLRViews(input_size=32, blur_prob=0.0)
    trainer = fit_steps(model, views, steps=2)
    loss = trainer.callback_metrics["train/loss"]
    assert math.isfinite(float(loss))
    assert trainer.global_step == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))

    path = tmp_path / "simclr.ckpt"
    trainer.save_checkpoint(path)
    reloaded = load_objective(path)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.equal(reloaded(x), model(x))
