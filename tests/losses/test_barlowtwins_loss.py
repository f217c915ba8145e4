"""Barlow Twins loss against the official ``main.py`` (BatchNorm without affine, then cross-correlation)."""

from __future__ import annotations

import math

import pytest
import torch
from lightly.loss import BarlowTwinsLoss
from torch import nn

from sslkit.losses import barlow_twins_loss


def _off_diagonal(x: torch.Tensor) -> torch.Tensor:
    n, m = x.shape
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def _official_barlow_twins(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    """``BarlowTwins.forward`` of facebookresearch/barlowtwins ``main.py`` after the projector (one process)."""
    bn = nn.BatchNorm1d(z1.shape[1], affine=False)
    c = bn(z1).T @ bn(z2)
    c.div_(z1.shape[0])
    on_diag = torch.diagonal(c).add_(-1).pow_(2).sum()
    off_diag = _off_diagonal(c).pow_(2).sum()
    return on_diag + lambd * off_diag


def test_loss_matches_official_code_and_lightly() -> None:
    torch.manual_seed(0)
    z_a, z_b = torch.randn(16, 32), torch.randn(16, 32)
    for lambd in (5e-3, 0.1):
        torch.testing.assert_close(barlow_twins_loss(z_a, z_b, lambd), _official_barlow_twins(z_a, z_b, lambd))
        torch.testing.assert_close(barlow_twins_loss(z_a, z_b, lambd), BarlowTwinsLoss(lambd)(z_a, z_b))
    assert math.isclose(float(_official_barlow_twins(z_a, z_b)), 37.7338409, rel_tol=1e-5)  # pinned (seed 0)


def test_loss_invariants() -> None:
    torch.manual_seed(0)
    z_a, z_b = torch.randn(16, 32, requires_grad=True), torch.randn(16, 32, requires_grad=True)
    barlow_twins_loss(z_a, z_b).backward()
    assert z_a.grad is not None and z_a.grad.abs().sum() > 0 and z_b.grad.abs().sum() > 0
    torch.testing.assert_close(barlow_twins_loss(z_a, z_b), barlow_twins_loss(z_b, z_a))  # c -> c.T
    assert barlow_twins_loss(z_a, z_a) < barlow_twins_loss(z_a, z_b)  # identical views: diagonal is 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(barlow_twins_loss(z_a.detach(), z_b.detach()))
    with pytest.raises(ValueError, match="barlow_twins_loss"):
        barlow_twins_loss(z_a, z_b[:, :8])
    with pytest.raises(ValueError, match="at least 2"):
        barlow_twins_loss(z_a[:1], z_b[:1])
