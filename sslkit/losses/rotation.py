"""Rotation-prediction loss: cross-entropy over the four rotations (Gidaris et al., 2018, Eq. 2;
E-SSL, Dangovski et al., 2022, Sec. 4: ``L = L_ssl + lambda * L_rot``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from sslkit.losses.precision import fp32


@fp32
def rotation_prediction_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` ``(N, 4)`` against rotation labels ``(N,)`` in ``{0, 1, 2, 3}``."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            "rotation_prediction_loss: expected logits (N, K) and labels (N,), got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    return F.cross_entropy(logits, labels)
