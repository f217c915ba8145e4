"""iBOT/DINOv2 block masks on the global crops: BEiT's ``MaskingGenerator`` (Bao et al., 2022, Alg. 1)
as used by DINOv2's ``collate_data_and_cast``, with an explicit ``torch.Generator``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sslkit.data.collate import collate_samples
from sslkit.masking.seeding import batch_generator, worker_id


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _add_block(mask: Tensor, max_patches: int, min_patches: int, log_aspect: tuple[float, float],
               g: torch.Generator) -> int:
    """One BEiT block of ``min_patches``..``max_patches`` new patches (10 tries); returns how many it masked."""
    height, width = mask.shape
    for _ in range(10):
        area = _uniform(g, min_patches, max_patches)
        aspect = math.exp(_uniform(g, *log_aspect))
        h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if w < width and h < height:
            top = int(torch.randint(0, height - h + 1, (), generator=g))
            left = int(torch.randint(0, width - w + 1, (), generator=g))
            region = mask[top:top + h, left:left + w]
            new = h * w - int(region.sum())
            if 0 < new <= max_patches:
                region.fill_(True)
                return new
    return 0


def beit_block_mask(grid: tuple[int, int], num_masked: int, g: torch.Generator, min_patches: int = 4,
                    max_patches: int | None = None, min_aspect: float = 0.3) -> Tensor:
    """A ``(H, W)`` bool mask of about ``num_masked`` patches made of rectangular blocks.

    Args:
        grid: Patch grid ``(H, W)``.
        num_masked: Target number of masked patches (blocks are added until reached or none fits).
        g: Random generator.
        min_patches: Smallest block (4).
        max_patches: Largest block (DINOv2: half the patches).
        min_aspect: Aspect ratios are drawn log-uniformly from ``[min_aspect, 1 / min_aspect]``.
    """
    mask = torch.zeros(grid, dtype=torch.bool)
    max_patches = max_patches if max_patches is not None else grid[0] * grid[1] // 2
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    count = 0
    while count < num_masked:
        delta = _add_block(mask, min(num_masked - count, max_patches), min_patches, log_aspect, g)
        if delta == 0:
            break
        count += delta
    return mask


def ibot_masks(num_images: int, grid: tuple[int, int], mask_ratio: tuple[float, float], mask_probability: float,
               g: torch.Generator) -> Tensor:
    """DINOv2's per-batch masks: ``(num_images, H * W)`` bool, a ``mask_probability`` share of images masked.

    The masked images' ratios are spread over ``mask_ratio`` (one stratum each, as DINOv2's
    ``linspace`` of ratios), the rest get an empty mask, and the order is shuffled.
    """
    n = grid[0] * grid[1]
    num_masked_images = int(num_images * mask_probability)
    bounds = torch.linspace(mask_ratio[0], mask_ratio[1], num_masked_images + 1).tolist()
    masks = [beit_block_mask(grid, int(n * _uniform(g, bounds[i], bounds[i + 1])), g).flatten()
             for i in range(num_masked_images)]
    masks += [torch.zeros(n, dtype=torch.bool)] * (num_images - num_masked_images)
    order = torch.randperm(num_images, generator=g)
    return torch.stack(masks)[order]


class IBOTMaskCollator:
    """Collator adding block masks for the global crops of a multi-crop batch (runs in the workers).

    Args:
        input_size: Global crop side in pixels.
        patch_size: ViT patch size.
        mask_ratio: Range of the masked share of a masked crop (DINOv2: ``(0.1, 0.5)``).
        mask_probability: Share of global crops that are masked at all (DINOv2: 0.5).
        num_global_views: Leading views that are global crops (2).
        seed: Mask seed; with the batch's sample keys it seeds the generator.
        collate_fn: Collator for the samples themselves (default: ``collate_samples``).

    Adds ``masks_ibot`` ``(num_global_views * B, N)`` bool (rows in the order of
    ``torch.cat(views[:num_global_views])``) and ``mask_worker``.
    """

    def __init__(
        self,
        input_size: int = 224,
        patch_size: int = 16,
        mask_ratio: tuple[float, float] = (0.1, 0.5),
        mask_probability: float = 0.5,
        num_global_views: int = 2,
        seed: int = 0,
        collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    ) -> None:
        if input_size % patch_size:
            raise ValueError(f"input_size {input_size} is not a multiple of patch_size {patch_size}")
        if not 0.0 <= mask_ratio[0] <= mask_ratio[1] < 1.0 or not 0.0 <= mask_probability <= 1.0:
            raise ValueError(f"need 0 <= mask_ratio[0] <= mask_ratio[1] < 1 and mask_probability in [0, 1], "
                             f"got {tuple(mask_ratio)} and {mask_probability}")
        self.input_size, self.patch_size = input_size, patch_size  # checked against the backbone (grid.py)
        self.grid = (input_size // patch_size,) * 2
        self.mask_ratio = (float(mask_ratio[0]), float(mask_ratio[1]))
        self.mask_probability = mask_probability
        self.num_global_views = num_global_views
        self.seed = seed
        self.collate_fn = collate_fn or collate_samples

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate_fn(samples)
        g = batch_generator(self.seed, batch["key"])
        batch["masks_ibot"] = ibot_masks(self.num_global_views * len(samples), self.grid, self.mask_ratio,
                                         self.mask_probability, g)
        batch["mask_worker"] = worker_id()
        return batch
