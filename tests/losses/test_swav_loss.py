"""SwAV loss (lightly's, shapes checked) against the official ``main_swav.py`` loop and ``distributed_sinkhorn``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslkit.losses import SwAVLoss


def _official_sinkhorn(out: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """``distributed_sinkhorn`` of facebookresearch/swav (world size 1)."""
    Q = torch.exp(out / epsilon).t()
    B, K = Q.shape[1], Q.shape[0]
    Q /= torch.sum(Q)
    for _ in range(iterations):
        Q /= torch.sum(Q, dim=1, keepdim=True)
        Q /= K
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B
    Q *= B
    return Q.t()


def _official_swav(output: torch.Tensor, bs: int, nmb_crops: int, queue: torch.Tensor | None,
                   temperature: float = 0.1) -> torch.Tensor:
    """The loss loop of ``main_swav.py``'s ``train`` (crops_for_assign = [0, 1]; queue holds scores)."""
    loss = 0
    for i, crop_id in enumerate([0, 1]):
        with torch.no_grad():
            out = output[bs * crop_id: bs * (crop_id + 1)].detach()
            if queue is not None:
                out = torch.cat((queue[i], out))
            q = _official_sinkhorn(out)[-bs:]
        subloss = 0
        for v in [c for c in range(nmb_crops) if c != crop_id]:
            x = output[bs * v: bs * (v + 1)] / temperature
            subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
        loss += subloss / (nmb_crops - 1)
    return loss / 2


def _scores(n: int, b: int = 6, k: int = 10) -> list[torch.Tensor]:
    return [F.normalize(torch.randn(b, k), dim=1) for _ in range(n)]  # cosine scores, as after the prototypes


def test_matches_official_loop_without_and_with_queue() -> None:
    torch.manual_seed(0)
    high, low = _scores(2), _scores(3)
    output = torch.cat(high + low)
    ours = SwAVLoss()(high, low)
    torch.testing.assert_close(ours, _official_swav(output, 6, 5, None))
    queue = torch.stack([torch.cat(_scores(2)) for _ in range(2)])  # (2, 12, K): scores of the queued features
    # lightly appends the queue after the batch, the official code before it: Sinkhorn is permutation-equivariant
    torch.testing.assert_close(SwAVLoss()(high, low, list(queue)), _official_swav(output, 6, 5, queue))
    assert math.isclose(float(ours), 5.4954309, rel_tol=1e-5)  # pinned (seed 0)


def test_invariants() -> None:
    torch.manual_seed(0)
    high = [s.requires_grad_() for s in _scores(2)]
    low = [s.requires_grad_() for s in _scores(2)]
    loss = SwAVLoss()(high, low)
    torch.testing.assert_close(loss, SwAVLoss()(high[::-1], low[::-1]))  # symmetric in the crop order
    loss.backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in high + low)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(SwAVLoss()([h.detach() for h in high], [x.detach() for x in low]))


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(6, 10\).*\(5, 10\)"):
        SwAVLoss()(_scores(2), [torch.randn(5, 10)])
    with pytest.raises(ValueError, match="queue per global crop"):
        SwAVLoss()(_scores(2), [], [torch.randn(4, 10)])
    with pytest.raises(ValueError, match="at least two crops"):
        SwAVLoss()(_scores(1), [])
