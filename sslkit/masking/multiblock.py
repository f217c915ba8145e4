"""I-JEPA multi-block masking (Assran et al., 2023, Sec. 3 and Appendix C), in the collator.

Follows ``src/masks/multiblock.py`` of facebookresearch/ijepa: per batch one target-block size and
one context-block size; per image ``num_targets`` target rectangles and one context rectangle from
which every target is removed (the constraint is relaxed one target at a time if no context block
with ``min_keep`` patches is found). Differences, all deliberate:

- every draw uses an explicit ``torch.Generator`` (:func:`sslkit.masking.seeding.batch_generator`);
  the reference draws block positions from the global RNG and seeds sizes from a shared counter;
- scale and aspect ratio are drawn independently, as the paper states (the reference reuses one
  uniform draw for both);
- a block may touch the last row/column (the reference's ``randint(0, H - h)`` never does);
- by default (``context="truncate"``) the collator does what the reference (and lightly's
  ``IJEPAMaskCollator``) does: every row is cut to the batch's shortest context, dropping each
  block's last (bottom-right) patches — fewer tokens, hence a cheaper step. ``context="all"`` keeps
  every context patch: rows are padded and ``masks_context_lens`` gives the valid count; the ViT and
  the predictor run such batches packed or padded. The default was chosen by kNN per wall-clock
  second (``bench/ijepa_context.py``, ``docs/benchmarks.md``): over 6 seeds the two policies reach
  the same kNN at equal steps and at equal time, and "all" costs 1.6x the time per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from sslkit.data.collate import collate_samples
from sslkit.masking.seeding import batch_generator, worker_id

CONTEXT_POLICIES = ("all", "truncate")


def _check_context(context: str) -> None:
    if context not in CONTEXT_POLICIES:
        raise ValueError(f"context must be 'all' or 'truncate', got {context!r}")


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + float(torch.rand(1, generator=g)) * (high - low)


def sample_block_size(
    grid: tuple[int, int], scale: tuple[float, float], aspect_ratio: tuple[float, float], g: torch.Generator
) -> tuple[int, int]:
    """``(h, w)`` of a block covering ``scale`` of the grid with ``h / w`` in ``aspect_ratio``.

    Always at least 1 and strictly smaller than the grid, as in the reference.
    """
    H, W = grid
    area = H * W * _uniform(g, *scale)
    ar = _uniform(g, *aspect_ratio)
    h = min(max(int(round(math.sqrt(area * ar))), 1), max(H - 1, 1))
    w = min(max(int(round(math.sqrt(area / ar))), 1), max(W - 1, 1))
    return h, w


def _place(grid: tuple[int, int], size: tuple[int, int], g: torch.Generator) -> Tensor:
    """A boolean ``(H, W)`` grid with one ``size`` rectangle at a uniformly random position."""
    (H, W), (h, w) = grid, size
    top = int(torch.randint(0, H - h + 1, (1,), generator=g))
    left = int(torch.randint(0, W - w + 1, (1,), generator=g))
    block = torch.zeros(H, W, dtype=torch.bool)
    block[top : top + h, left : left + w] = True
    return block


def sample_context_block(
    grid: tuple[int, int], size: tuple[int, int], targets: list[Tensor], min_keep: int, g: torch.Generator,
    tries_per_relaxation: int = 20,
) -> Tensor:
    """Context block minus the ``targets`` (boolean ``(H, W)`` grids), with at least ``min_keep`` patches.

    After ``tries_per_relaxation`` failures the last remaining target stops constraining the block
    (the reference's ``acceptable_regions`` relaxation).
    """
    num_constraints, failures = len(targets), 0
    while True:
        block = _place(grid, size, g)
        for target in targets[:num_constraints]:
            block &= ~target
        if int(block.sum()) >= min_keep:
            return block
        failures += 1
        if failures == tries_per_relaxation:
            failures, num_constraints = 0, max(num_constraints - 1, 0)
            if num_constraints == 0 and size[0] * size[1] < min_keep:
                raise ValueError(f"a {size} context block can never hold min_keep={min_keep} patches")


def sample_multiblock_masks(
    batch_size: int,
    grid: tuple[int, int],
    g: torch.Generator,
    num_targets: int = 4,
    target_scale: tuple[float, float] = (0.15, 0.2),
    target_aspect_ratio: tuple[float, float] = (0.75, 1.5),
    context_scale: tuple[float, float] = (0.85, 1.0),
    min_keep: int = 10,
    context: Literal["all", "truncate"] = "truncate",
) -> dict[str, Tensor]:
    """I-JEPA context and target patch indices for a batch (row-major in ``grid``).

    Returns:
        ``masks_context`` ``(B, Kc)`` (rows padded with 0 past their length), ``masks_context_lens``
        ``(B,)``, and ``masks_target`` ``(B, M, Kt)``: every target block of the batch has the same
        ``Kt = h * w`` patches, so targets need no padding. With ``context="truncate"`` every row
        of ``masks_context`` is its block's first ``Kc = min(lens)`` patches and there is no
        ``masks_context_lens``.
    """
    _check_context(context)
    target_size = sample_block_size(grid, target_scale, target_aspect_ratio, g)
    context_size = sample_block_size(grid, context_scale, (1.0, 1.0), g)
    contexts, targets = [], []
    for _ in range(batch_size):
        blocks = [_place(grid, target_size, g) for _ in range(num_targets)]
        targets.append(torch.stack([b.flatten().nonzero().squeeze(1) for b in blocks]))
        contexts.append(sample_context_block(grid, context_size, blocks, min_keep, g).flatten().nonzero().squeeze(1))
    lens = torch.tensor([len(c) for c in contexts], dtype=torch.long)
    if context == "truncate":
        keep = int(lens.min())
        return {"masks_context": torch.stack([c[:keep] for c in contexts]), "masks_target": torch.stack(targets)}
    padded = torch.zeros(batch_size, int(lens.max()), dtype=torch.long)
    for row, idx in zip(padded, contexts):
        row[: len(idx)] = idx
    return {"masks_context": padded, "masks_context_lens": lens, "masks_target": torch.stack(targets)}


class MultiBlockMaskCollator:
    """Collator adding I-JEPA masks to each training batch (runs in the dataloader workers).

    Args:
        input_size: Image side in pixels.
        patch_size: ViT patch size; the mask grid is ``input_size // patch_size`` square.
        num_targets: Target blocks per image (I-JEPA: 4).
        target_scale: Area fraction of each target block (I-JEPA: 0.15-0.2).
        target_aspect_ratio: Height/width of target blocks (I-JEPA: 0.75-1.5).
        context_scale: Area fraction of the (square) context block before removing targets (0.85-1).
        min_keep: Fewest context patches (I-JEPA's config: 10).
        context: ``"all"`` (every context patch, per-sample counts) or ``"truncate"`` (the authors'
            and lightly's: rows cut to the batch's shortest context; see the module docstring).
        seed: Mask seed; with the batch's sample keys it seeds the generator.
        collate_fn: Collator for the samples themselves (default: ``collate_samples``).

    Adds to the batch: ``masks_context`` ``(B, Kc)``, ``masks_context_lens`` ``(B,)`` (not with
    ``context="truncate"``),
    ``masks_target`` ``(B, M, Kt)`` (patch indices) and ``mask_worker`` (worker id, ``-1`` in the
    main process).
    """

    def __init__(
        self,
        input_size: int = 224,
        patch_size: int = 16,
        num_targets: int = 4,
        target_scale: tuple[float, float] = (0.15, 0.2),
        target_aspect_ratio: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
        min_keep: int = 10,
        context: Literal["all", "truncate"] = "truncate",
        seed: int = 0,
        collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    ) -> None:
        if input_size % patch_size:
            raise ValueError(f"input_size {input_size} is not a multiple of patch_size {patch_size}")
        self.input_size, self.patch_size = input_size, patch_size  # checked against the backbone (grid.py)
        self.grid = (input_size // patch_size, input_size // patch_size)
        self.num_targets = num_targets
        self.target_scale = tuple(target_scale)
        self.target_aspect_ratio = tuple(target_aspect_ratio)
        self.context_scale = tuple(context_scale)
        self.min_keep = min_keep
        _check_context(context)
        self.context = context
        self.seed = seed
        self.collate_fn = collate_fn or collate_samples

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate_fn(samples)
        g = batch_generator(self.seed, batch["key"])
        batch.update(
            sample_multiblock_masks(
                len(samples), self.grid, g, self.num_targets, self.target_scale, self.target_aspect_ratio,
                self.context_scale, self.min_keep, self.context,
            )
        )
        batch["mask_worker"] = worker_id()
        return batch
