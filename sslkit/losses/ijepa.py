"""I-JEPA loss: Assran et al., 2023, "Self-Supervised Learning from Images with a Joint-Embedding
Predictive Architecture", Sec. 3 (average L2 distance between predicted and target patch
representations; the authors' ``src/train.py`` uses smooth-L1 on layer-normed targets).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sslkit.losses.precision import fp32


@fp32
def ijepa_targets(teacher_tokens: Tensor, targets: Tensor) -> Tensor:
    """Layer-normed target-encoder tokens at the target blocks.

    Args:
        teacher_tokens: Target-encoder patch tokens of the full image ``(B, N, D)``.
        targets: Patch indices of the target blocks ``(B, M, Kt)``.

    Returns:
        ``h``: ``(B * M, Kt, D)``, row ``b * M + m`` is block ``m`` of image ``b``.
    """
    if teacher_tokens.ndim != 3 or targets.ndim != 3 or targets.shape[0] != teacher_tokens.shape[0]:
        raise ValueError(
            f"ijepa_targets: expected tokens (B, N, D) and targets (B, M, Kt), got "
            f"{tuple(teacher_tokens.shape)} and {tuple(targets.shape)}"
        )
    D = teacher_tokens.shape[-1]
    h = F.layer_norm(teacher_tokens, (D,))  # no affine: the reference normalises features only
    idx = targets.flatten(1).unsqueeze(-1).expand(-1, -1, D)  # (B, M * Kt, D)
    return h.gather(1, idx).reshape(-1, targets.shape[2], D)


@fp32
def ijepa_loss(p: Tensor, h: Tensor, kind: Literal["smooth_l1", "l2"] = "smooth_l1") -> Tensor:
    """Regression of predicted onto target patch representations, averaged over every element.

    Args:
        p: Predictor output ``(B * M, Kt, D)``.
        h: Targets from :func:`ijepa_targets`, same shape; treated as constants.
        kind: ``"smooth_l1"`` (the authors' code, beta 1) or ``"l2"`` (the paper's text).

    Returns:
        Scalar loss.
    """
    if p.shape != h.shape or p.ndim != 3:
        raise ValueError(
            f"ijepa_loss: predictions {tuple(p.shape)} and targets {tuple(h.shape)} must be one (B*M, Kt, D) shape"
        )
    h = h.detach()
    if kind == "smooth_l1":
        return F.smooth_l1_loss(p, h)
    if kind == "l2":
        return F.mse_loss(p, h)
    raise ValueError(f"ijepa_loss: kind must be 'smooth_l1' or 'l2', got {kind!r}")
