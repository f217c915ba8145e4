"""MSN loss (lightly's, shapes checked, global me-max) against the official ``src/losses.py`` of facebookresearch/msn."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslkit.losses import MSNLoss


def _official_sinkhorn(Q: torch.Tensor, num_itr: int = 3) -> torch.Tensor:
    Q = Q.T
    B, K = Q.shape[1], Q.shape[0]
    Q = Q / torch.sum(Q)
    for _ in range(num_itr):
        Q = Q / torch.sum(Q, dim=1, keepdim=True) / K
        Q = Q / torch.sum(Q, dim=0, keepdim=True) / B
    return (Q * B).T


def _official_msn(anchor_views: torch.Tensor, target_views: torch.Tensor, prototypes: torch.Tensor,
                  tau: float = 0.1, T: float = 0.25, use_sinkhorn: bool = True) -> torch.Tensor:
    """``init_msn_loss(...)``'s ``loss`` (me_max on, one process): ``loss + rloss``."""
    proto_labels = torch.eye(len(prototypes))

    def snn(query: torch.Tensor, supports: torch.Tensor) -> torch.Tensor:
        return F.softmax(F.normalize(query) @ F.normalize(supports).T / tau, dim=1) @ proto_labels

    def sharpen(p: torch.Tensor) -> torch.Tensor:
        sharp_p = p ** (1.0 / T)
        return sharp_p / torch.sum(sharp_p, dim=1, keepdim=True)

    num_views = len(anchor_views) // len(target_views)
    probs = snn(anchor_views, prototypes)
    with torch.no_grad():
        targets = sharpen(snn(target_views, prototypes))
        if use_sinkhorn:
            targets = _official_sinkhorn(targets)
        targets = torch.cat([targets for _ in range(num_views)], dim=0)
    loss = torch.mean(torch.sum(torch.log(probs ** (-targets)), dim=1))
    avg_probs = torch.mean(probs, dim=0)
    rloss = -torch.sum(torch.log(avg_probs ** (-avg_probs))) + math.log(float(len(avg_probs)))
    return loss + rloss


def test_matches_official_code() -> None:
    torch.manual_seed(0)
    anchors, targets, prototypes = torch.randn(3 * 4, 16), torch.randn(4, 16), torch.randn(8, 16)
    ours = MSNLoss()(anchors, targets, prototypes)
    torch.testing.assert_close(ours, _official_msn(anchors, targets, prototypes))
    torch.testing.assert_close(MSNLoss(sinkhorn_iterations=0)(anchors, targets, prototypes),
                               _official_msn(anchors, targets, prototypes, use_sinkhorn=False))
    assert math.isclose(float(ours), 3.5126343, rel_tol=1e-5)  # pinned (seed 0)


def test_invariants() -> None:
    torch.manual_seed(0)
    anchors = torch.randn(8, 16, requires_grad=True)
    prototypes = torch.randn(8, 16, requires_grad=True)
    targets = torch.randn(4, 16, requires_grad=True)
    MSNLoss()(anchors, targets, prototypes).backward()
    assert anchors.grad.abs().sum() > 0 and prototypes.grad.abs().sum() > 0
    assert targets.grad is None  # the target is a constant
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(MSNLoss()(anchors.detach(), targets.detach(), prototypes.detach()))


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(7, 16\), \(4, 16\), \(8, 16\)"):
        MSNLoss()(torch.randn(7, 16), torch.randn(4, 16), torch.randn(8, 16))
    with pytest.raises(ValueError, match=r"\(8, 16\), \(4, 12\)"):
        MSNLoss()(torch.randn(8, 16), torch.randn(4, 12), torch.randn(8, 16))
