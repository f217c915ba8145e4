"""iBOT/DINOv2 block masks: BEiT's block generator, DINOv2's ratio strata, seeded per batch."""

from __future__ import annotations

import torch

from sslkit.masking import IBOTMaskCollator, beit_block_mask, ibot_masks


def test_beit_blocks_reach_the_target_and_stay_rectangular_unions() -> None:
    g = torch.Generator().manual_seed(0)
    for target in (4, 10, 20):
        mask = beit_block_mask((8, 8), target, g)
        # BEiT stops once no block fits the remainder: near the target, never far past it
        assert target // 2 < int(mask.sum()) <= target + 16
    assert int(beit_block_mask((8, 8), 0, g).sum()) == 0


def test_dinov2_strata_and_probability() -> None:
    g = torch.Generator().manual_seed(0)
    masks = ibot_masks(16, (8, 8), (0.1, 0.5), 0.5, g)
    assert masks.shape == (16, 64) and masks.dtype == torch.bool
    counts = masks.sum(1)
    assert int((counts > 0).sum()) == 8  # half of the crops are masked
    assert int(counts.max()) <= int(64 * 0.5) + 16


def test_collator_is_seeded_by_the_batch() -> None:
    samples = [{"views": [torch.zeros(3, 32, 32)] * 3, "label": 0, "key": f"k{i}"} for i in range(4)]
    collate = IBOTMaskCollator(input_size=32, patch_size=8)
    a, b = collate(samples), collate(samples)
    assert a["masks_ibot"].shape == (8, 16) and torch.equal(a["masks_ibot"], b["masks_ibot"])
    other = collate([{**s, "key": s["key"] + "x"} for s in samples])
    assert not torch.equal(other["masks_ibot"], a["masks_ibot"])  # different keys, different seed
