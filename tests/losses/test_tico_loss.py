"""TiCo loss: golden values over two steps from the paper's Algorithm 1 and lightly's ``TiCoLoss``;
the running covariance is a buffer that checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import TiCoLoss as LightlyTiCoLoss

from sslkit.losses import TiCoLoss


def _algorithm_1(z_1: torch.Tensor, z_2: torch.Tensor, c: torch.Tensor, beta: float = 0.9, rho: float = 8.0):
    """One step of TiCo's Algorithm 1 (with lightly's gradient-free constant 1): ``(loss, new C)``."""
    z_1, z_2 = F.normalize(z_1, dim=1), F.normalize(z_2, dim=1)
    b = z_1.T @ z_1 / z_1.shape[0]
    c = beta * c + (1 - beta) * b
    loss = 1 - (z_1 * z_2).sum(dim=1).mean() + rho * ((z_1 @ c) * z_1).sum(dim=1).mean()
    return loss, c


def _steps() -> list[tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    return [(torch.randn(8, 16), torch.randn(8, 16)) for _ in range(2)]


def test_two_steps_match_algorithm_1_and_lightly() -> None:
    ours, lightly_loss, c = TiCoLoss(dim=16, gather_distributed=False), LightlyTiCoLoss(), torch.zeros(16, 16)
    for z_a, z_b in _steps():
        expected, c = _algorithm_1(z_a, z_b, c)
        got = ours(z_a, z_b)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(got, lightly_loss(z_a, z_b))
    torch.testing.assert_close(ours.C, c)
    assert math.isclose(float(expected), 1.09741521, rel_tol=1e-5)  # pinned (seed 0, second step)


def test_covariance_is_in_the_state_dict_and_resumes() -> None:
    (z_a, z_b), (z_a2, z_b2) = _steps()
    loss = TiCoLoss(dim=16, gather_distributed=False)
    loss(z_a, z_b)
    resumed = TiCoLoss(dim=16, gather_distributed=False)
    resumed.load_state_dict(loss.state_dict())
    assert "C" in loss.state_dict() and loss.C.abs().sum() > 0
    torch.testing.assert_close(resumed(z_a2, z_b2), loss(z_a2, z_b2))


def test_loss_invariants() -> None:
    torch.manual_seed(0)
    z_a, z_b = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16)
    TiCoLoss(dim=16)(z_a, z_b).backward()
    assert z_a.grad is not None and z_a.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = TiCoLoss(dim=16)
        assert torch.isfinite(loss(z_a.detach(), z_b)) and torch.isfinite(loss(z_a.detach(), z_b))
        assert loss.C.dtype == torch.float32  # the running covariance stays in full precision
    with pytest.raises(ValueError, match="TiCoLoss"):
        TiCoLoss(dim=16)(z_a, z_b[:, :8])
    with pytest.raises(ValueError, match=r"\(B, 32\)"):
        TiCoLoss(dim=32)(z_a, z_b)
