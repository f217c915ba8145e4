"""Gather across ranks with gradients: lightly's ``GatherLayer`` (used by its contrastive losses).

``gather(x)`` returns every rank's ``x`` (rank order); its backward all-reduces (sums) the incoming
gradients and keeps this rank's slice. With DDP averaging gradients over ranks, a loss that each rank
computes on its local anchors against the gathered batch and that is *averaged* over ranks then has
exactly the gradient of the single-process loss on the global batch
(``tests/distributed/test_ddp_equivalence.py`` checks it on two gloo processes).
"""

from __future__ import annotations

import torch
from lightly.utils.dist import gather, rank, world_size


def gather_cat(x: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` on each rank -> ``(world_size * B, ...)``, differentiable; ``x`` itself on one process."""
    return torch.cat(gather(x)) if world_size() > 1 else x


__all__ = ["gather", "gather_cat", "rank", "world_size"]
