"""I-JEPA multi-block masks: geometry, reproducibility, agreement with lightly's collator."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from lightly.data.ijepa_collate import IJEPAMaskCollator

from sslkit.masking import MultiBlockMaskCollator, sample_multiblock_masks


def _grid(indices: torch.Tensor, side: int) -> torch.Tensor:
    grid = torch.zeros(side * side, dtype=torch.bool)
    grid[indices] = True
    return grid.view(side, side)


def test_targets_are_rectangles_and_context_avoids_them(samples) -> None:
    batch = MultiBlockMaskCollator(input_size=32, patch_size=4, seed=3, context="all")(samples)
    context, lens, targets = batch["masks_context"], batch["masks_context_lens"], batch["masks_target"]
    B, M, Kt = targets.shape
    assert (B, M) == (8, 4) and context.shape[0] == B and lens.shape == (B,)
    assert 0.1 * 64 <= Kt <= 0.25 * 64  # scale 0.15-0.2 of an 8x8 grid, after rounding h and w
    assert bool((lens >= 10).all()) and int(lens.max()) == context.shape[1]
    for b in range(B):
        ctx = context[b, : lens[b]]
        assert len(set(ctx.tolist())) == len(ctx)
        assert bool((context[b, lens[b]:] == 0).all())  # padding
        for m in range(M):
            block = _grid(targets[b, m], 8)
            rows, cols = block.any(1).nonzero(), block.any(0).nonzero()
            assert int(block.sum()) == len(rows) * len(cols) == Kt  # a full h x w rectangle
            if int(lens[b]) >= 10:  # the constraint is only relaxed when no valid context exists
                assert not (_grid(ctx, 8) & block).any()


def test_same_seed_same_masks_other_seed_other_masks(samples) -> None:
    a = MultiBlockMaskCollator(32, 4, seed=7, context="all")(samples)
    b = MultiBlockMaskCollator(32, 4, seed=7, context="all")(samples)
    c = MultiBlockMaskCollator(32, 4, seed=8, context="all")(samples)
    for key in ("masks_context", "masks_context_lens", "masks_target"):
        assert torch.equal(a[key], b[key])
    same = [a[k].shape == c[k].shape and torch.equal(a[k], c[k]) for k in ("masks_context", "masks_target")]
    assert not all(same)
    assert a["mask_worker"] == -1  # collated in this (main) process


def test_target_block_sizes_cover_lightlys() -> None:
    """lightly's ``IJEPAMaskCollator`` (the reference's sampler) with I-JEPA's ImageNet config
    draws target blocks whose sizes all occur in ours too (ours draws scale and aspect ratio
    independently, so its support is a superset)."""
    torch.manual_seed(0)
    reference = IJEPAMaskCollator(
        input_size=224, patch_size=16, enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2),
        aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=10,
    )
    theirs = Counter(reference([torch.zeros(1)] * 2)[2][0].shape[1] for _ in range(100))
    ours = Counter(
        sample_multiblock_masks(2, (14, 14), torch.Generator().manual_seed(i))["masks_target"].shape[2]
        for i in range(300)
    )
    assert set(theirs) <= set(ours)
    mean = lambda c: sum(k * v for k, v in c.items()) / sum(c.values())  # noqa: E731
    assert abs(mean(ours) - mean(theirs)) < 0.1 * mean(theirs)


def test_truncate_cuts_every_context_to_the_batch_minimum(samples) -> None:
    """The authors' (and lightly's) policy: same draws, each row keeps its first ``min(lens)`` patches."""
    assert MultiBlockMaskCollator(32, 4).context == "truncate"  # the default, chosen in docs/benchmarks.md
    whole = MultiBlockMaskCollator(32, 4, seed=5, context="all")(samples)
    cut = MultiBlockMaskCollator(32, 4, seed=5, context="truncate")(samples)
    lens = whole["masks_context_lens"]
    assert "masks_context_lens" not in cut and int(lens.min()) < int(lens.max())  # a batch where it matters
    assert cut["masks_context"].shape == (len(samples), int(lens.min()))
    assert torch.equal(cut["masks_context"], whole["masks_context"][:, : int(lens.min())])
    assert torch.equal(cut["masks_target"], whole["masks_target"])


def test_unknown_context_policy_is_named() -> None:
    with pytest.raises(ValueError, match="context must be 'all' or 'truncate', got 'trunc'"):
        MultiBlockMaskCollator(32, 4, context="trunc")
