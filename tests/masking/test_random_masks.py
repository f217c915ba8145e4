"""MAE random masks (against lightly's ``random_token_mask``) and SimMIM block masks."""

from __future__ import annotations

import torch
from lightly.models.utils import random_token_mask

from sslkit.masking import RandomMaskCollator, SimMIMMaskCollator, random_patch_masks, simmim_patch_masks


def test_random_patch_masks_are_lightlys_with_an_explicit_generator() -> None:
    torch.manual_seed(11)
    lightly_keep, lightly_mask = random_token_mask((4, 64), mask_ratio=0.75, mask_class_token=True)
    keep, masked = random_patch_masks(4, 64, 0.75, torch.Generator().manual_seed(11))
    assert torch.equal(keep, lightly_keep) and torch.equal(masked, lightly_mask)
    assert keep.shape == (4, 16)
    assert torch.equal(torch.cat([keep, masked], 1).sort(1).values, torch.arange(64).expand(4, -1))


def test_random_mask_collator_is_reproducible(samples) -> None:
    a, b = RandomMaskCollator(32, 4, seed=1)(samples), RandomMaskCollator(32, 4, seed=1)(samples)
    c = RandomMaskCollator(32, 4, seed=2)(samples)
    assert torch.equal(a["masks_context"], b["masks_context"]) and torch.equal(a["masks_target"], b["masks_target"])
    assert not torch.equal(a["masks_context"], c["masks_context"])
    assert a["masks_context"].shape == (8, 16) and a["masks_target"].shape == (8, 48)


def test_simmim_masks_are_unit_squares() -> None:
    idx = simmim_patch_masks(3, grid=8, mask_unit=2, mask_ratio=0.6, g=torch.Generator().manual_seed(0))
    assert idx.shape == (3, 40)  # ceil(0.6 * 16) = 10 squares of 2x2 patches
    for row in idx:
        grid = torch.zeros(64, dtype=torch.bool)
        grid[row] = True
        units = grid.view(4, 2, 4, 2).permute(0, 2, 1, 3).reshape(16, 4)
        assert bool((units.all(1) | ~units.any(1)).all())  # every 2x2 unit fully in or out
        assert int(units.all(1).sum()) == 10


def test_simmim_collator(samples) -> None:
    batch = SimMIMMaskCollator(input_size=32, patch_size=4, mask_patch_size=8, seed=0)(samples)
    assert batch["masks_target"].shape == (8, 40)
    assert batch["mask_worker"] == -1
