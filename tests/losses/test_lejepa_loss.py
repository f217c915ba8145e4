"""LeJEPA (lightly's ``LeJEPALoss``/``SIGReg``) against the authors' minimal code (rbalestr-lab/lejepa ``MINIMAL.md``)."""

from __future__ import annotations

import math

import pytest
import torch
from lightly.loss import LeJEPALoss


def _official_sigreg(proj: torch.Tensor, num_slices: int, knots: int = 17) -> torch.Tensor:
    """``SIGReg.forward`` of the authors' minimal example (``proj`` ``(V, N, D)``, slices drawn from the global RNG)."""
    t = torch.linspace(0, 3, knots, dtype=torch.float32)
    dt = 3 / (knots - 1)
    weights = torch.full((knots,), 2 * dt, dtype=torch.float32)
    weights[[0, -1]] = dt
    phi = torch.exp(-t.square() / 2.0)
    A = torch.randn(proj.size(-1), num_slices)
    A = A.div_(A.norm(p=2, dim=0))
    x_t = (proj @ A).unsqueeze(-1) * t
    err = (x_t.cos().mean(-3) - phi).square() + x_t.sin().mean(-3).square()
    return ((err @ (weights * phi)) * proj.size(-2)).mean()


def _official_lejepa(proj: torch.Tensor, num_global: int, lamb: float, num_slices: int) -> torch.Tensor:
    """``sigreg * lamb + inv * (1 - lamb)``; the invariance target is the mean of the global views (the paper's
    multi-crop form; the minimal example has global views only, where it is ``proj.mean(0)``)."""
    inv_loss = (proj[:num_global].mean(0) - proj).square().mean()
    return _official_sigreg(proj, num_slices) * lamb + inv_loss * (1 - lamb)


def test_matches_authors_code() -> None:
    torch.manual_seed(0)
    proj = torch.randn(5, 32, 16)  # 2 global + 3 local views, 32 samples, 16-d projections
    torch.manual_seed(1)
    ours = LeJEPALoss(lambda_param=0.05, sigreg_num_vectors=64)(local_proj=proj[2:], global_proj=proj[:2])
    torch.manual_seed(1)
    expected = _official_lejepa(proj, 2, 0.05, 64)
    torch.testing.assert_close(ours, expected)
    assert math.isclose(float(ours), 1.1187418, rel_tol=1e-4)  # pinned (seeds 0, 1)


def test_invariants() -> None:
    torch.manual_seed(0)
    proj = torch.randn(4, 64, 8, requires_grad=True)
    loss_fn = LeJEPALoss(sigreg_num_vectors=32)
    torch.manual_seed(2)
    loss = loss_fn(local_proj=proj[2:], global_proj=proj[:2])
    torch.manual_seed(2)
    swapped = loss_fn(local_proj=proj[2:], global_proj=proj[[1, 0]])
    torch.testing.assert_close(loss, swapped)  # symmetric in the global-view order
    loss.backward()
    assert proj.grad.abs().sum() > 0 and proj.grad[:2].abs().sum() > 0  # no stop-gradient anywhere
    collapsed = torch.zeros(4, 64, 8)
    torch.manual_seed(2)
    assert float(loss_fn(local_proj=collapsed[2:], global_proj=collapsed[:2])) > loss.item()  # SIGReg punishes collapse
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(loss_fn(local_proj=proj[2:].detach(), global_proj=proj[:2].detach()))


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match="matching batch and feature"):
        LeJEPALoss()(local_proj=torch.randn(2, 8, 4), global_proj=torch.randn(2, 8, 5))
    with pytest.raises(ValueError, match=r"\(V_local, N, D\)"):
        LeJEPALoss()(local_proj=torch.randn(8, 4), global_proj=torch.randn(2, 8, 4))
