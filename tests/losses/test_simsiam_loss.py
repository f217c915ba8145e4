"""SimSiam loss against the paper's Algorithm 1 ``D(p, z)``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslkit.losses import simsiam_loss


def _paper_d(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Chen & He, 2021, Algorithm 1: negative cosine similarity with ``z.detach()``."""
    z = z.detach()
    p = F.normalize(p, dim=1)
    z = F.normalize(z, dim=1)
    return -(p * z).sum(dim=1).mean()


def test_matches_paper() -> None:
    torch.manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(8, 16) for _ in range(4))
    ours = 0.5 * simsiam_loss(p1, z2) + 0.5 * simsiam_loss(p2, z1)
    torch.testing.assert_close(ours, 0.5 * _paper_d(p1, z2) + 0.5 * _paper_d(p2, z1))
    assert math.isclose(float(ours), 0.0512125, rel_tol=1e-4)  # pinned (seed 0)


def test_invariants() -> None:
    torch.manual_seed(0)
    p, z = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16, requires_grad=True)
    loss = simsiam_loss(p, z)
    torch.testing.assert_close(loss, simsiam_loss(z.detach(), p.detach()))  # symmetric in value
    loss.backward()
    assert p.grad.abs().sum() > 0 and z.grad is None  # stop-gradient on z
    assert float(simsiam_loss(z.detach(), z.detach())) == pytest.approx(-1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(simsiam_loss(p.detach(), z.detach()))


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(8, 16\) and \(1, 16\)"):
        simsiam_loss(torch.randn(8, 16), torch.randn(1, 16))  # lightly's cosine would broadcast
