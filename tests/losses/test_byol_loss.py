"""BYOL loss: golden values from the paper's Eq. 2 (normalised MSE) and lightly's negative cosine."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NegativeCosineSimilarity

from sslkit.losses import byol_loss


def _paper_eq2(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``|| p/|p| - z/|z| ||^2``, averaged over the batch (BYOL, Eq. 2)."""
    return (F.normalize(p, dim=1) - F.normalize(z, dim=1)).pow(2).sum(dim=1).mean()


def test_loss_matches_paper_and_lightly() -> None:
    torch.manual_seed(0)
    p, z = torch.randn(8, 16), torch.randn(8, 16)
    torch.testing.assert_close(byol_loss(p, z), _paper_eq2(p, z))
    torch.testing.assert_close(byol_loss(p, z), 2 + 2 * NegativeCosineSimilarity()(p, z))
    assert math.isclose(float(byol_loss(p, z)), float(_paper_eq2(p, z)), rel_tol=1e-6)
    assert math.isclose(float(_paper_eq2(p, z)), 1.79620159, rel_tol=1e-5)  # pinned (seed 0)


def test_loss_invariants() -> None:
    torch.manual_seed(0)
    p, z = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None  # the target is a constant (stop-gradient)
    z = z.detach()
    assert float(byol_loss(z, 3 * z)) == pytest.approx(0.0, abs=1e-6)  # scale-invariant, zero at alignment
    assert float(byol_loss(z, -z)) == pytest.approx(4.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(byol_loss(p.detach(), z))
    with pytest.raises(ValueError, match="byol_loss"):
        byol_loss(p, z[:4])
