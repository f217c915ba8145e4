"""SimSiam loss: Chen & He, 2021, "Exploring Simple Siamese Representation Learning", Eq. 1."""

from __future__ import annotations

import torch
from lightly.loss import NegativeCosineSimilarity

from sslkit.losses.shapes import check_pair

_negative_cosine = NegativeCosineSimilarity()


def simsiam_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``D(p, stopgrad(z)) = -cos(p, z)`` averaged over the batch (lightly's ``NegativeCosineSimilarity``).

    The stop-gradient is part of the loss (SimSiam's Eq. 3), so no caller can forget it.

    Args:
        p: Predictions of one view, ``(B, D)``.
        z: Projections of the other view, ``(B, D)``.
    """
    check_pair(p, z, "simsiam_loss")
    return _negative_cosine(p, z.detach())
