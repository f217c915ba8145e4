"""fp32 islands: a wrapped loss computes inside bf16 autocast exactly what it computes in fp32; EMA stays fp32."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslkit.losses.precision import fp32, upcast


def _info_nce(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(q)))


def test_fp32_island_matches_the_fp32_loss_of_the_same_inputs() -> None:
    gen = torch.Generator().manual_seed(0)
    q, k = (torch.randn(64, 32, generator=gen).bfloat16().requires_grad_() for _ in range(2))
    reference = _info_nce(q.detach().float(), k.detach().float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        island = fp32(_info_nce)(q, k)
        plain = _info_nce(q, k)  # logits of a bf16 matmul
        assert torch.is_autocast_enabled("cpu")  # switched back on after the island
    assert island.dtype == torch.float32
    torch.testing.assert_close(island, reference, rtol=1e-6, atol=1e-6)
    assert (plain.float() - reference).abs() > 1e-4  # what the island is for
    island.backward()
    assert q.grad is not None and q.grad.dtype == torch.bfloat16 and torch.isfinite(q.grad).all()


def test_fp32_is_a_no_op_on_fp32_inputs_outside_autocast() -> None:
    q, k = torch.randn(8, 4), torch.randn(8, 4)
    assert torch.equal(fp32(_info_nce)(q, k), _info_nce(q, k))
    assert fp32(_info_nce).__name__ == "_info_nce"


def test_upcast_reaches_nested_views_and_leaves_other_dtypes() -> None:
    views = {"a": [torch.ones(2, dtype=torch.bfloat16), (torch.ones(2, dtype=torch.float16),)],
             "idx": torch.arange(3), "x64": torch.ones(1, dtype=torch.float64), "t": 0.1}
    out = upcast(views)
    assert out["a"][0].dtype == out["a"][1][0].dtype == torch.float32
    assert isinstance(out["a"][1], tuple)
    assert out["idx"].dtype == torch.int64 and out["x64"].dtype == torch.float64 and out["t"] == 0.1


def test_ema_update_inside_bf16_autocast_is_the_fp32_update() -> None:
    from torch import nn

    from sslkit.teacher.update import update_momentum

    torch.manual_seed(0)
    student, teacher = nn.Linear(32, 32), nn.Linear(32, 32)
    expected = [t.detach() * 0.996 + s.detach() * 0.004 for s, t in zip(student.parameters(), teacher.parameters())]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # where Lightning's bf16-mixed runs training_step
        update_momentum(student, teacher, 0.996)
    for t, e in zip(teacher.parameters(), expected):
        assert t.dtype == torch.float32
        torch.testing.assert_close(t, e, rtol=0, atol=1e-7)
