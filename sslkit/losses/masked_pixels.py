"""Pixel-reconstruction losses of masked image modeling, scored on the masked patches only.

- MAE: He et al., 2022, "Masked Autoencoders Are Scalable Vision Learners", Sec. 3 (MSE on
  per-patch normalised pixels of masked patches, ``norm_pix_loss`` in facebookresearch/mae).
- SimMIM: Xie et al., 2022, "SimMIM: A Simple Framework for Masked Image Modeling", Eq. 1 (L1 on
  the masked pixels).
"""

from __future__ import annotations

import torch.nn.functional as F
from lightly.models.utils import normalize_mean_var, patchify
from torch import Tensor

from sslkit.losses.precision import fp32


def masked_patch_pixels(images: Tensor, targets: Tensor, patch_size: int) -> Tensor:
    """Pixels of the patches at ``targets`` ``(B, M)``: ``(B, M, patch_size**2 * C)``.

    Patch layout is lightly's ``patchify`` (row-major patches, ``(p, q, c)`` inside a patch), the
    layout ``MAEDecoder`` predicts in.
    """
    if images.ndim != 4 or targets.ndim != 2 or targets.shape[0] != images.shape[0]:
        raise ValueError(
            f"expected images (B, C, H, W) and targets (B, M), got {tuple(images.shape)} and {tuple(targets.shape)}"
        )
    patches = patchify(images, patch_size)  # (B, N, p*p*C)
    return patches.gather(1, targets.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))


def _check(p: Tensor, t: Tensor, name: str) -> None:
    if p.ndim != 3 or p.shape != t.shape:
        raise ValueError(
            f"{name}: predictions {tuple(p.shape)} and target pixels {tuple(t.shape)} must be one (B, M, P) shape"
        )


@fp32
def mae_loss(p: Tensor, target_pixels: Tensor, norm_pix: bool = True, eps: float = 1e-6) -> Tensor:
    """MSE between predicted and (per-patch normalised) pixels of the masked patches.

    Args:
        p: Decoder predictions at the masked patches ``(B, M, P)``.
        target_pixels: :func:`masked_patch_pixels` of the input ``(B, M, P)``.
        norm_pix: Normalise each target patch to zero mean, unit variance (MAE's default; lightly's
            ``normalize_mean_var``, the same unbiased variance as MAE's code).
        eps: Variance epsilon (MAE: 1e-6).
    """
    _check(p, target_pixels, "mae_loss")
    t = normalize_mean_var(target_pixels, dim=-1, eps=eps) if norm_pix else target_pixels
    return F.mse_loss(p, t.detach())


@fp32
def simmim_loss(p: Tensor, target_pixels: Tensor) -> Tensor:
    """L1 between predicted and raw pixels of the masked patches, averaged per pixel and channel."""
    _check(p, target_pixels, "simmim_loss")
    return F.l1_loss(p, target_pixels.detach())
