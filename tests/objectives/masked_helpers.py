"""Shared checks for masked objectives: which tokens reach the encoder, where masks are made."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from sslkit.data import ShardDataModule
from tests.conftest import TINY_VIT as PLAIN_VIT

TINY_VIT = {**PLAIN_VIT, "patch_size": 4}  # an 8 x 8 grid: masks need patches to choose from


def block_token_counts(encoder: nn.Module, run: Callable[[], Any]) -> list[int]:
    """Valid tokens entering ``encoder.blocks[0]`` per call during ``run()`` (all rows of the
    sequence, so padded layouts count their padding and packed ones only real tokens)."""
    counts: list[int] = []
    def record(_module: nn.Module, args: tuple) -> None:
        counts.append(args[0].shape[0] * args[0].shape[1])

    hook = encoder.blocks[0].register_forward_pre_hook(record)
    try:
        run()
    finally:
        hook.remove()
    return counts


def worker_batches(shards: Path, transform: Callable, collate_fn: Callable, num_batches: int = 4) -> list[dict]:
    """The first batches of a 2-worker training loader."""
    dm = ShardDataModule(
        shards, batch_size_per_device=8, num_workers=2, train_transform=transform, collate_fn=collate_fn,
        shuffle_buffer=16, persistent_workers=False, pin_memory=False, seed=0,
    )
    batches = []
    for batch in dm.train_dataloader():
        batches.append(batch)
        if len(batches) == num_batches:
            break
    return batches


def random_samples(num: int = 8) -> list[dict]:
    """Collator inputs: one random 32-px view, a label and a unique key each."""
    g = torch.Generator().manual_seed(0)
    return [{"views": [torch.randn(3, 32, 32, generator=g)], "label": i, "key": f"s{i}"} for i in range(num)]
