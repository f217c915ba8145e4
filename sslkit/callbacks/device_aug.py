"""Device augmentation: make the training views on the batch's device, after the transfer.

With ``train_transform: sslkit.transforms.gpu.UInt8Image`` the workers only decode, so training
batches arrive as ``views = [uint8 (B, C, H, W)]``. This callback replaces ``batch["views"]`` by
:class:`~sslkit.transforms.gpu.BatchViews`' float views in ``on_train_batch_start``, which Lightning
calls after ``batch_to_device`` with the very dict ``training_step`` then receives. The objective is
unchanged, the DataModule's ``on_after_batch_transfer`` (which counts consumed batches) runs first
and is untouched, and validation batches are never augmented.

Each step's parameters come from a generator seeded with ``(seed, global_step, global_rank)``: the
views of a step do not depend on what ran before it, so a resumed run draws the same views.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from sslkit.transforms.gpu import BatchViews


class DeviceAugmentation(pl.Callback):
    """Apply ``views`` to the uint8 training batch on its device before each training step.

    Args:
        views: The batched view transform (e.g. SimCLR's two views), or several whose views are
            concatenated in order (multi-crop: DINO's 2 global 224-px + 10 local 96-px crops).
        seed: Base seed of the per-step parameter generator.
    """

    def __init__(self, views: BatchViews | list[BatchViews], seed: int = 0) -> None:
        self.views = list(views) if isinstance(views, (list, tuple)) else [views]
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        images = batch["views"][0]
        if images.dtype != torch.uint8:
            raise TypeError(
                f"DeviceAugmentation needs uint8 views from the workers (train_transform: "
                f"sslkit.transforms.gpu.UInt8Image), got {images.dtype}"
            )
        g = self.generator(trainer.global_step, trainer.global_rank)
        batch["views"] = [view for views in self.views for view in views(images, generator=g)]

    def generator(self, step: int, rank: int) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, step, rank]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
