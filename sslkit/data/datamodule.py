"""``ShardDataModule``: training and validation streams over WebDataset shards, resumable mid-epoch.

Resume with Lightning: the module counts the training batches the trainer actually receives (in
``on_after_batch_transfer`` while training, so batches merely prefetched by Lightning are not
counted) and returns ``{"epoch", "batches_consumed", ...}`` from ``state_dict``. Lightning saves that
in the checkpoint under the class name and calls ``load_state_dict`` when ``trainer.fit(ckpt_path=...)``
restores, before it first iterates the train loader. Lightning also restores its own loop counters
(``batch_idx`` continues at the consumed count) and keeps ``len(train_dataloader)`` as the full epoch,
so the stream starts at batch ``batches_consumed`` of the saved epoch and the epoch ends on time.
The train loader is also stateful (``state_dict`` returns the same count), so Lightning stores it in
its loop state too and does not warn that the loader is not resumable.
Ranks advance in lockstep, so rank 0's count (the one checkpointed) is every rank's.

The state is elastic (see :mod:`sslkit.data.plan`): resumed under another number of ranks, workers or
per-device batch, the interrupted epoch finishes its remaining samples on the new allocation, so its
length changes; the module then tells the trainer the epoch's new length when the epoch starts
(``fit_loop.max_batches`` and the combined loader's limit, which Lightning otherwise fixes at setup).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from sslkit.data.collate import pil_to_tensor, single_view
from sslkit.data.loader import ShardLoader
from sslkit.data.stream import ShardStream
from sslkit.hardware import usable_cores

logger = logging.getLogger(__name__)


class ShardDataModule(pl.LightningDataModule):
    """WebDataset shards as a LightningDataModule.

    Args:
        train_shards: shard spec for training (a folder with ``manifest.json``, a brace pattern,
            URLs, or a list of these).
        val_shards: shard spec for validation (eval batches, e.g. for online kNN), or ``None``.
        batch_size_per_device: samples per batch on each device.
        num_workers: DataLoader workers per device, at most the cores this process may use (a larger
            value is lowered to that, said once in the log).
        train_transform: view transform, PIL image -> ``list[Tensor]`` (default: one un-augmented view).
        eval_transform: PIL image -> ``Tensor`` (default: to float tensor in ``[0, 1]``).
        collate_fn: ``list[dict] -> batch`` for training, run in the workers (default: stack views per
            index, labels and keys; masking collators wrap or replace it).
        shuffle_buffer: samples per permuted window of the epoch's global order.
        mix_shards: shards mixed per group (``None``: all when indexed, 64 streamed; see :mod:`sslkit.data.plan`).
        seed: base seed of the shard order and shuffle buffers.
        remainder: ``"drop"`` (default: the last ``< world_size * batch`` samples of each shuffled epoch
            are unused) or ``"pad"`` (repeat up to that many); see :mod:`sslkit.data.plan`.
        pin_memory: pin batches in host memory (only when CUDA is available).
        persistent_workers: keep workers alive across epochs.
        prefetch_factor: batches prefetched per worker.
    """

    def __init__(
        self,
        train_shards: str | list[str],
        val_shards: str | list[str] | None = None,
        batch_size_per_device: int = 256,
        num_workers: int = 4,
        train_transform: Callable | None = None,
        eval_transform: Callable | None = None,
        collate_fn: Callable | None = None,
        shuffle_buffer: int = 1000,
        mix_shards: int | None = None,
        seed: int = 0,
        remainder: str = "drop",
        pin_memory: bool = True,
        persistent_workers: bool = True,
        prefetch_factor: int | None = 2,
    ) -> None:
        super().__init__()
        if remainder not in ("drop", "pad"):
            raise ValueError(f"training remainder must be 'drop' or 'pad', got {remainder!r}")
        self.train_shards = train_shards
        self.val_shards = val_shards
        self.batch_size_per_device = batch_size_per_device
        self.num_workers = _workers_for_cores(num_workers)
        self.train_transform = train_transform or single_view
        self.eval_transform = eval_transform or pil_to_tensor
        self.collate_fn = collate_fn
        self.shuffle_buffer = shuffle_buffer
        self.mix_shards = mix_shards
        self.seed = seed
        self.remainder = remainder
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self._train_stream: ShardStream | None = None
        self._epoch = 0
        self._batches_consumed = 0
        self._state_to_load: dict[str, Any] | None = None
        self._restored_state: dict[str, Any] = {}
        self._restored_epoch = 0

    def train_dataloader(self) -> DataLoader:
        self._train_stream = ShardStream(
            self.train_shards,
            batch_size=self.batch_size_per_device,
            transform=self.train_transform,
            collate_fn=self.collate_fn,
            shuffle=True,
            shuffle_buffer=self.shuffle_buffer,
            mix_shards=self.mix_shards,
            seed=self.seed,
            remainder=self.remainder,
        )
        loader = ShardLoader(
            self._train_stream,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers,
            prefetch_factor=self.prefetch_factor,
            epoch_fn=self._trainer_epoch,
            state_fn=self.state_dict,
            length_fn=self._epoch_length,
        )
        if self._state_to_load is not None:  # restored before the loader existed
            self._train_stream.load_state_dict(self._state_to_load)
            self._state_to_load = None
        return loader

    def val_dataloader(self) -> DataLoader | list:
        if self.val_shards is None:
            return []
        return build_eval_loader(
            self.val_shards, self.eval_transform, self.batch_size_per_device, self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = self.trainer
        if trainer is not None and trainer.training:
            stream = self._train_stream
            if stream is not None and stream.epoch != self._epoch:  # the first batch of an epoch
                self._epoch, self._batches_consumed = stream.epoch, stream.first_batch
            self._batches_consumed += 1
        return batch

    def data_counters(self) -> dict[str, int]:
        """Corrupt-data counters of the training stream (``data/skipped_samples``, ...), for logging."""
        return self._train_stream.counters() if self._train_stream is not None else {}

    def state_dict(self) -> dict[str, Any]:
        stream = self._train_stream
        if stream is None or not stream.started:
            return dict(self._restored_state)  # the loader has not started the restored epoch yet
        return stream.state_dict(self._batches_consumed if stream.epoch == self._epoch else stream.first_batch)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        self._state_to_load, self._restored_state = dict(state_dict), dict(state_dict)
        self._epoch, self._batches_consumed = int(state_dict["epoch"]), int(state_dict["batches_consumed"])
        self._restored_epoch = self._epoch
        if self._train_stream is not None:
            self._train_stream.load_state_dict(state_dict)

    def _trainer_epoch(self) -> int:
        trainer = self.trainer
        if trainer is not None:
            # The loader may be built (e.g. by `estimated_stepping_batches` in configure_optimizers)
            # before Lightning restores `current_epoch`; the restored stream state knows the epoch.
            return max(trainer.current_epoch, self._restored_epoch)
        assert self._train_stream is not None
        return self._train_stream._next_epoch

    def _epoch_length(self, num_batches: int) -> None:
        """Tell the trainer the starting epoch's length (an epoch resumed on another allocation changes it)."""
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return
        limit = trainer.limit_train_batches  # as Lightning applies it at setup
        if isinstance(limit, int):
            num_batches = min(num_batches, limit)
        elif limit is not None and limit < 1.0:
            num_batches = int(num_batches * limit)
        # Lightning fixes the epoch length at setup, in two places: the loop's count and the combined
        # loader's limits, a list its epoch iterator (being built around this call) holds: change it in place.
        trainer.fit_loop.max_batches = num_batches
        combined = getattr(trainer.fit_loop, "_combined_loader", None)
        if combined is not None and combined.limits is not None:
            combined.limits[:] = [num_batches] * len(combined.limits)


def _workers_for_cores(num_workers: int) -> int:
    """``num_workers``, lowered to the usable cores (more workers than cores only slow decoding down)."""
    cores = usable_cores()
    if num_workers > cores:
        logger.info("data.num_workers %d is more than the %d usable CPU cores: using %d", num_workers, cores, cores)
        return cores
    return num_workers


def build_eval_loader(
    shards: str | list[str],
    transform: Callable | None,
    batch_size: int,
    num_workers: int,
    *,
    pin_memory: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
) -> DataLoader:
    """Eval batches ``{"image": (B, C, H, W), "label": (B,), "key": [B]}``: every sample exactly once.

    The order is deterministic (no shuffling; it depends on ``num_workers``, so key by ``"key"``;
    more workers than usable cores are lowered to the cores);
    the last batch of a rank may be partial. Over several ranks each sample goes to exactly one rank
    and ranks may differ by one batch.
    """
    stream = ShardStream(
        shards,
        batch_size=batch_size,
        transform=transform or pil_to_tensor,
        shuffle=False,
        remainder="none",
        rank=rank,
        world_size=world_size,
    )
    return ShardLoader(stream, num_workers=_workers_for_cores(num_workers), pin_memory=pin_memory)
