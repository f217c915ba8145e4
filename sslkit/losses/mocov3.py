"""MoCo v3 contrastive loss: Chen, Xie, He, 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers", Algorithm 1 and the official ``moco/builder.py``.

Unlike NT-Xent (lightly's ``NTXentLoss``), a query is contrasted only against the keys of the global
batch (no query-query negatives), and the loss is scaled by ``2T`` as in the official code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.utils import dist

from sslkit.losses.precision import fp32
from sslkit.losses.shapes import check_pair


@fp32
def mocov3_loss(
    q: torch.Tensor, k: torch.Tensor, temperature: float = 0.2, gather_distributed: bool = True
) -> torch.Tensor:
    """InfoNCE of queries ``q`` against keys ``k`` gathered from every rank, times ``2 T``.

    Args:
        q: Student predictions of one view, ``(B, D)``.
        k: Teacher projections of the other view, ``(B, D)`` (no gradient needed).
        temperature: Softmax temperature ``T`` (0.2 for ViT, 1.0 for ResNet in the paper).
        gather_distributed: Use the keys of all ranks as negatives (lightly's gather, with gradients).

    Returns:
        Scalar loss, the mean over this rank's queries.
    """
    check_pair(q, k, "mocov3_loss")
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    labels = torch.arange(q.shape[0], device=q.device)
    if gather_distributed and dist.world_size() > 1:
        k = torch.cat(dist.gather(k))  # (B * world, D)
        labels = labels + dist.rank() * q.shape[0]
    logits = q @ k.T / temperature  # (B, B * world)
    return F.cross_entropy(logits, labels) * (2.0 * temperature)
