"""VICReg loss (lightly's ``VICRegLoss`` as VICReg configures it) against the official ``main_vicreg.py``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslkit.objectives import VICReg
from tests.conftest import TINY_VIT


def _off_diagonal(x: torch.Tensor) -> torch.Tensor:
    n, m = x.shape
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def _official_vicreg(
    x: torch.Tensor, y: torch.Tensor, sim: float = 25.0, std: float = 25.0, cov: float = 1.0
) -> torch.Tensor:
    """``VICReg.forward`` of facebookresearch/vicreg ``main_vicreg.py`` after the projector (one process)."""
    batch_size, num_features = x.shape
    repr_loss = F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + 0.0001)
    std_y = torch.sqrt(y.var(dim=0) + 0.0001)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    cov_x = (x.T @ x) / (batch_size - 1)
    cov_y = (y.T @ y) / (batch_size - 1)
    cov_loss = _off_diagonal(cov_x).pow_(2).sum().div(num_features) + \
        _off_diagonal(cov_y).pow_(2).sum().div(num_features)
    return sim * repr_loss + std * std_loss + cov * cov_loss


@pytest.fixture(scope="module")
def criterion() -> torch.nn.Module:
    return VICReg(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=16,
                  proj_output_dim=16).criterion


def test_loss_matches_official_code(criterion) -> None:
    torch.manual_seed(0)
    x, y = 0.5 * torch.randn(16, 32), 0.5 * torch.randn(16, 32)  # std 0.5: the variance hinge is active
    torch.testing.assert_close(criterion(x, y), _official_vicreg(x, y))
    assert math.isclose(float(_official_vicreg(x, y)), 26.7639484, rel_tol=1e-5)  # pinned (seed 0)


def test_loss_invariants(criterion) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 32, requires_grad=True), torch.randn(16, 32, requires_grad=True)
    criterion(x, y).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0
    torch.testing.assert_close(criterion(x, y), criterion(y, x))  # symmetric
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(criterion(x.detach(), y.detach()))
    with pytest.raises(AssertionError, match="same shape"):
        criterion(x, y[:, :8])
