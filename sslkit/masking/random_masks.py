"""Random patch masking for MAE (He et al., 2022, Sec. 3) and block masking for SimMIM (Xie et al., 2022, Sec. 3.1)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sslkit.data.collate import collate_samples
from sslkit.masking.seeding import batch_generator, worker_id


def random_patch_masks(
    batch_size: int, num_patches: int, mask_ratio: float, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """MAE's per-sample random shuffle: ``(keep (B, K), masked (B, N - K))`` patch indices.

    The same argsort-of-uniform-noise scheme as MAE's ``random_masking`` and lightly's
    ``random_token_mask(..., mask_class_token=True)``, with ``K = int(N * (1 - mask_ratio))``,
    drawn from ``g``.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    num_keep = int(num_patches * (1 - mask_ratio))
    order = torch.argsort(torch.rand(batch_size, num_patches, generator=g), dim=1)
    return order[:, :num_keep], order[:, num_keep:]


def simmim_patch_masks(
    batch_size: int, grid: int, mask_unit: int, mask_ratio: float, g: torch.Generator
) -> Tensor:
    """SimMIM's ``MaskGenerator``: mask ``ceil(ratio * units)`` random ``mask_unit``-patch squares.

    Args:
        grid: Patches per side of the (square) patch grid.
        mask_unit: Side of one masked square, in patches (SimMIM: 32-px squares over 16-px ViT
            patches → 2).

    Returns:
        ``(B, M)`` masked patch indices (row-major in the patch grid, sorted), the same ``M`` for
        every sample.
    """
    if grid % mask_unit:
        raise ValueError(f"a {grid}x{grid} patch grid cannot be tiled by {mask_unit}x{mask_unit} mask units")
    units = grid // mask_unit
    num_masked = int(math.ceil(units * units * mask_ratio))
    chosen = torch.argsort(torch.rand(batch_size, units * units, generator=g), dim=1)[:, :num_masked]
    unit_mask = torch.zeros(batch_size, units * units, dtype=torch.bool).scatter_(1, chosen, True)
    unit_mask = unit_mask.view(batch_size, units, units)
    mask = unit_mask.repeat_interleave(mask_unit, 1).repeat_interleave(mask_unit, 2)  # (B, grid, grid)
    return mask.flatten(1).nonzero()[:, 1].view(batch_size, -1)


class RandomMaskCollator:
    """Collator adding MAE masks to each training batch (runs in the dataloader workers).

    Args:
        input_size: Image side in pixels.
        patch_size: ViT patch size.
        mask_ratio: Fraction of patches hidden from the encoder (MAE: 0.75).
        seed: Mask seed; with the batch's sample keys it seeds the generator.
        collate_fn: Collator for the samples themselves (default: ``collate_samples``).

    Adds ``masks_context`` ``(B, K)`` (visible patches, the encoder's input), ``masks_target``
    ``(B, N - K)`` (masked patches, the loss's) and ``mask_worker``.
    """

    def __init__(
        self,
        input_size: int = 224,
        patch_size: int = 16,
        mask_ratio: float = 0.75,
        seed: int = 0,
        collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    ) -> None:
        if input_size % patch_size:
            raise ValueError(f"input_size {input_size} is not a multiple of patch_size {patch_size}")
        self.input_size, self.patch_size = input_size, patch_size  # checked against the backbone (grid.py)
        self.num_patches = (input_size // patch_size) ** 2
        self.mask_ratio = mask_ratio
        self.seed = seed
        self.collate_fn = collate_fn or collate_samples

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate_fn(samples)
        g = batch_generator(self.seed, batch["key"])
        batch["masks_context"], batch["masks_target"] = random_patch_masks(
            len(samples), self.num_patches, self.mask_ratio, g
        )
        batch["mask_worker"] = worker_id()
        return batch


class SimMIMMaskCollator:
    """Collator adding SimMIM masks to each training batch (runs in the dataloader workers).

    Args:
        input_size: Image side in pixels.
        patch_size: ViT patch size.
        mask_patch_size: Side of a masked square in pixels; a multiple of ``patch_size``. SimMIM
            masks 32-px squares of 192-px images (1/6 of the side); scale it with the image.
        mask_ratio: Fraction of squares masked (SimMIM: 0.6).
        seed: Mask seed; with the batch's sample keys it seeds the generator.
        collate_fn: Collator for the samples themselves (default: ``collate_samples``).

    Adds ``masks_target`` ``(B, M)`` (masked patch indices) and ``mask_worker``.
    """

    def __init__(
        self,
        input_size: int = 192,
        patch_size: int = 16,
        mask_patch_size: int = 32,
        mask_ratio: float = 0.6,
        seed: int = 0,
        collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    ) -> None:
        if input_size % mask_patch_size or mask_patch_size % patch_size:
            raise ValueError(
                f"need input_size ({input_size}) % mask_patch_size ({mask_patch_size}) == 0 and "
                f"mask_patch_size % patch_size ({patch_size}) == 0"
            )
        self.input_size, self.patch_size = input_size, patch_size  # checked against the backbone (grid.py)
        self.grid = input_size // patch_size
        self.mask_unit = mask_patch_size // patch_size
        self.mask_ratio = mask_ratio
        self.seed = seed
        self.collate_fn = collate_fn or collate_samples

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate_fn(samples)
        g = batch_generator(self.seed, batch["key"])
        batch["masks_target"] = simmim_patch_masks(len(samples), self.grid, self.mask_unit, self.mask_ratio, g)
        batch["mask_worker"] = worker_id()
        return batch
