"""BYOL regression loss: Grill et al., 2020, "Bootstrap Your Own Latent", Eq. 2."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslkit.losses.precision import fp32
from sslkit.losses.shapes import check_pair


@fp32
def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean squared error between l2-normalised prediction and target, ``2 - 2 cos(p, z)``.

    This is lightly's ``NegativeCosineSimilarity`` up to the affine map ``2 + 2 x``, which keeps the
    paper's loss scale (it matters for the weight-decay/gradient balance under LARS).

    Args:
        p: Online predictions of one view, ``(B, D)``.
        z: Target projections of the other view, ``(B, D)``; treated as a constant.

    Returns:
        Scalar loss in ``[0, 4]``, averaged over the batch.
    """
    check_pair(p, z, "byol_loss")
    return 2.0 - 2.0 * F.cosine_similarity(p, z.detach(), dim=-1).mean()
