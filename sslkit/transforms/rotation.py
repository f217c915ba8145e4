"""Four-fold rotations of a batch, for rotation prediction (Gidaris et al., 2018; E-SSL, Dangovski et al., 2022)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torch import Tensor


def four_fold_rotations(x: Tensor) -> tuple[Tensor, Tensor]:
    """Every image at 0, 90, 180 and 270 degrees (counter-clockwise), rotation-major.

    Args:
        x: Square images ``(B, C, H, H)``.

    Returns:
        ``(x_rot, labels)``: ``(4B, C, H, H)`` with rows ``k * B ... (k + 1) * B - 1`` rotated by
        ``k * 90`` degrees, and the labels ``k`` ``(4B,)``.
    """
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"four_fold_rotations: expected square images (B, C, H, H), got {tuple(x.shape)}")
    x_rot = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return x_rot, labels


class WithRotationView:
    """``transform(image) + rotation_view(image)``: an objective's views plus E-SSL's extra view(s).

    Args:
        transform: The host objective's view transform (e.g. ``SimCLRViews``).
        rotation_view: View transform of the view to rotate (E-SSL's CIFAR code: a 16-px crop with
            SimCLR's colour augmentation), appended last.
    """

    def __init__(self, transform: Callable[[Image.Image], list[Tensor]],
                 rotation_view: Callable[[Image.Image], list[Tensor]]) -> None:
        self.transform = transform
        self.rotation_view = rotation_view

    def __call__(self, image: Image.Image) -> list[Tensor]:
        return [*self.transform(image), *self.rotation_view(image)]
