"""Barlow Twins loss over the global batch: Zbontar et al., 2021, Algorithm 1 and the official code."""

from __future__ import annotations

import torch
from lightly.loss import BarlowTwinsLoss
from lightly.utils import dist

from sslkit.losses.precision import fp32
from sslkit.losses.shapes import check_pair


@fp32
def barlow_twins_loss(z_a: torch.Tensor, z_b: torch.Tensor, lambda_param: float = 5e-3,
                      gather_distributed: bool = True) -> torch.Tensor:
    """lightly's ``BarlowTwinsLoss`` on projections gathered (with gradients) from every rank.

    lightly's own ``gather_distributed`` standardises each rank's slice with its local statistics and
    averages the per-rank cross-correlations; the official code standardises over the global batch
    (SyncBatchNorm) before summing. Gathering first computes exactly the single-device loss of the
    global batch on every rank.

    Args:
        z_a: Projections of view a, ``(B, D)``.
        z_b: Projections of view b, ``(B, D)``.
        lambda_param: Weight of the redundancy-reduction (off-diagonal) term (5e-3 in the paper).
        gather_distributed: Gather projections from all ranks before the loss.
    """
    check_pair(z_a, z_b, "barlow_twins_loss")
    if gather_distributed and dist.world_size() > 1:
        z_a, z_b = torch.cat(dist.gather(z_a)), torch.cat(dist.gather(z_b))  # (B * world, D)
    return BarlowTwinsLoss(lambda_param=lambda_param, gather_distributed=False)(z_a, z_b)
