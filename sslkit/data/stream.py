"""Streaming reader: an IterableDataset over WebDataset shards with exact, resumable epochs.

``ShardStream`` emits whole batches (collated inside the DataLoader worker, so masking collators run
there too) following the epoch plan of :mod:`sslkit.data.plan`. ``ShardLoader`` is the DataLoader
that drives it: it tells the workers the epoch and the resume point through a small shared-memory
tensor (so persistent workers see them too) and counts the batches handed to the consumer.

Resume: a rank's batches come from workers in DataLoader round-robin order, batch ``j`` from logical
worker ``j % W``. Resuming at batch ``k``, physical worker ``p`` plays logical worker ``(p + k) % W``,
so the round-robin continues at batch ``k``; each worker re-reads (without decoding) and discards
the raw samples of its batches below ``k``, which keeps its shuffle buffer on the same trajectory.
The plan depends on the shards, seed, epoch, world size, batch size and number of workers: a
resumed run must keep these.

Corrupt data never ends a run: a shard that fails to open, or ends before its manifest count
(truncated), is abandoned at the failure and counted in ``data/corrupt_shards``; a sample whose image
does not decode is dropped and counted in ``data/skipped_samples``. To keep every batch full and
every rank at the same batch count, the missing places are filled by repeating decodable samples
(``data/filled_samples``). Counters live in shared memory, one row per worker; read them with
:meth:`ShardStream.counters` in the main process.
"""

from __future__ import annotations

import io
import logging
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.gopen import gopen

from sslkit.data.collate import collate_samples, pil_to_tensor
from sslkit.data.manifest import resolve_shards, tar_samples
from sslkit.data.plan import Piece, WorkerPlan, rank_batches, shard_order, worker_plan

logger = logging.getLogger(__name__)

COUNTER_NAMES = ("skipped_samples", "corrupt_shards", "filled_samples")
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
_MAX_WORKERS = 256  # rows of the shared counter table; worker ids wrap beyond it
_EPOCH, _START, _RANK, _WORLD = range(4)  # slots of the shared control tensor

Transform = Callable[[Image.Image], Any]
Collator = Callable[[list[dict[str, Any]]], Any]


class ShardStream(IterableDataset):
    """Batches from WebDataset shards, split exactly across ranks and DataLoader workers.

    Args:
        shards: a directory with ``manifest.json``, a manifest path/URL, a shard brace pattern or
            URL, or a list of these (see :func:`sslkit.data.manifest.resolve_shards`).
        batch_size: samples per batch (per device).
        transform: PIL image -> ``Tensor`` (emitted as ``"image"``) or ``list[Tensor]`` (``"views"``).
        collate_fn: ``list[dict] -> batch``; runs inside the worker.
        shuffle: shuffle shard order per epoch and samples through a seeded buffer (training);
            ``False`` gives a deterministic order (evaluation).
        shuffle_buffer: samples held by each worker's shuffle buffer.
        seed: base seed; epoch ``e`` uses ``(seed, e)``.
        remainder: ``"drop"``, ``"pad"`` or ``"none"`` (see :mod:`sslkit.data.plan`).
        rank: this process's rank; with ``world_size``, overrides ``torch.distributed``.
        world_size: number of ranks.
    """

    def __init__(
        self,
        shards: str | Sequence[str],
        *,
        batch_size: int,
        transform: Transform | None = None,
        collate_fn: Collator | None = None,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        remainder: str = "drop",
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.shard_set = resolve_shards(shards)
        self.batch_size = batch_size
        self.transform = transform or pil_to_tensor
        # A transform that only needs the image at a given size says so (``UInt8Image.decode_size``).
        self._draft_size: tuple[int, int] | None = getattr(self.transform, "decode_size", None)
        self.collate_fn = collate_fn or collate_samples
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.remainder = remainder
        self._rank, self._world_size = rank, world_size
        self.num_workers = 1  # set by ShardLoader; part of the resume state
        self.epoch = 0
        self.batches_consumed = 0
        self._next_epoch = 0
        self._resume: tuple[int, int] | None = None
        self._control = torch.zeros(4, dtype=torch.int64).share_memory_()
        self._counters = torch.zeros(_MAX_WORKERS, len(COUNTER_NAMES), dtype=torch.int64).share_memory_()
        len(self)  # fail now, not in a worker, when the data is smaller than one global batch

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.shard_set.class_names

    @property
    def num_samples(self) -> int:
        return self.shard_set.num_samples

    def rank_and_world_size(self) -> tuple[int, int]:
        """Explicit rank/world_size if given, else ``torch.distributed``'s, else ``(0, 1)``."""
        if self._rank is not None and self._world_size is not None:
            return self._rank, self._world_size
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        """Batches this rank gets per epoch (the same on every rank unless ``remainder="none"``)."""
        rank, world_size = self.rank_and_world_size()
        _, sizes = rank_batches(
            self.num_samples, rank=rank, world_size=world_size, batch_size=self.batch_size,
            remainder=self.remainder,
        )
        return len(sizes)

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the next iteration (it otherwise advances by one after each complete epoch)."""
        self._next_epoch = epoch

    def start_epoch(self, epoch: int) -> int:
        """Publish epoch, resume point and rank to the workers; returns the first batch index."""
        start = self._resume[1] if self._resume and self._resume[0] == epoch else 0
        self._resume = None
        rank, world_size = self.rank_and_world_size()
        self._control.copy_(torch.tensor([epoch, start, rank, world_size]))
        self.epoch, self.batches_consumed = epoch, start
        return start

    def state_dict(self) -> dict[str, int]:
        """Where this rank is: epoch and batches consumed in it (ranks advance in lockstep)."""
        epoch, consumed = self.epoch, self.batches_consumed
        if consumed >= len(self):
            epoch, consumed = epoch + 1, 0
        return {
            "epoch": epoch,
            "batches_consumed": consumed,
            "seed": self.seed,
            "world_size": self.rank_and_world_size()[1],
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "num_samples": self.num_samples,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue at ``state``'s epoch and batch on the next iteration."""
        expected = self.state_dict()
        changed = [k for k in ("seed", "world_size", "batch_size", "num_workers", "num_samples")
                   if k in state and state[k] != expected[k]]
        self._next_epoch = int(state["epoch"])
        if changed:
            logger.warning(
                "data stream state does not match this run (%s changed); restarting epoch %d from"
                " its first batch", ", ".join(changed), self._next_epoch,
            )
            return
        self._resume = (int(state["epoch"]), int(state["batches_consumed"]))

    def counters(self) -> dict[str, int]:
        """Totals over all workers: ``data/skipped_samples``, ``data/corrupt_shards``, ``data/filled_samples``."""
        totals = self._counters.sum(dim=0).tolist()
        return {f"data/{name}": int(value) for name, value in zip(COUNTER_NAMES, totals)}

    def __iter__(self) -> Iterator[Any]:
        if int(self._control[_WORLD]) == 0:  # iterated directly, not through ShardLoader
            self.start_epoch(self._next_epoch)
        epoch, start, rank, world_size = (int(v) for v in self._control.tolist())
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        logical = (worker + start) % num_workers
        counts = [s.num_samples for s in self.shard_set.shards]
        order = shard_order(len(counts), seed=self.seed, epoch=epoch, shuffle=self.shuffle)
        plan = worker_plan(
            counts, order=order, rank=rank, world_size=world_size, worker=logical,
            num_workers=num_workers, batch_size=self.batch_size, remainder=self.remainder,
        )
        skip = sum(1 for j in plan.batch_ids if j < start)
        seed = int(np.random.SeedSequence([self.seed, epoch, rank, logical]).generate_state(1)[0])
        yield from self._batches(plan, order, skip, random.Random(seed), worker % _MAX_WORKERS)

    def _batches(
        self, plan: WorkerPlan, order: list[int], skip: int, rng: random.Random, row: int
    ) -> Iterator[Any]:
        raw = self._read(plan.pieces, row)
        if self.shuffle and self.shuffle_buffer > 1:
            raw = _buffer_shuffle(raw, self.shuffle_buffer, rng)
        reservoir: deque[dict[str, Any]] = deque(maxlen=self.batch_size)  # raw samples for filling
        for size in plan.batch_sizes[:skip]:
            reservoir.extend(islice(raw, size))  # consumed before the resume point: read, not decoded
        for size in plan.batch_sizes[skip:]:
            chunk = list(islice(raw, size))
            reservoir.extend(chunk)
            samples = [s for s in (self._decode(r, row) for r in chunk) if s is not None]
            if len(samples) < size:
                samples = self._fill(samples, size, reservoir, order, row)
            yield self.collate_fn(samples)

    def _read(self, pieces: Sequence[Piece], row: int | None) -> Iterator[dict[str, Any]]:
        for piece in pieces:
            yield from self._read_piece(piece, row)

    def _read_piece(self, piece: Piece, row: int | None) -> Iterator[dict[str, Any]]:
        """Raw samples ``[start, stop)`` of one shard; a failure ends the piece and is counted."""
        url = self.shard_set.shards[piece.shard].url
        got, error = 0, None
        try:
            with gopen(url, "rb") as stream:
                for sample in islice(tar_samples(stream, url), piece.start, piece.stop):
                    got += 1
                    yield sample
        except Exception as exc:  # corrupt data must not end the run
            error = exc
        if got < piece.stop - piece.start and row is not None:
            self._count(row, "corrupt_shards")
            logger.warning(
                "shard %s is corrupt or truncated (%s): got %d of samples %d..%d, skipping the rest",
                url, error or "ended early", got, piece.start, piece.stop - 1,
            )

    def _decode(self, raw: dict[str, Any], row: int | None) -> dict[str, Any] | None:
        key = raw.get("__key__", "?")
        data = next((raw[ext] for ext in IMAGE_EXTENSIONS if ext in raw), None)
        try:
            if data is None:
                raise ValueError("no image member")
            with Image.open(io.BytesIO(data)) as encoded:
                if self._draft_size is not None and encoded.format == "JPEG":
                    encoded.draft("RGB", self._draft_size)  # DCT-domain downscale: decode only what is used
                image = encoded.convert("RGB")
            label = int(raw["cls"]) if "cls" in raw else -1
        except Exception as exc:  # corrupt data must not end the run
            if row is not None:
                self._count(row, "skipped_samples")
                logger.warning("skipping sample %s in %s: %s", key, raw.get("__url__"), exc)
            return None
        out = self.transform(image)
        if isinstance(out, (list, tuple)):
            return {"views": list(out), "label": label, "key": key}
        return {"image": out, "label": label, "key": key}

    def _fill(
        self, samples: list[dict[str, Any]], size: int, reservoir: deque, order: list[int], row: int
    ) -> list[dict[str, Any]]:
        """Fill missing places of a batch by repeating decodable samples (batch counts must hold)."""
        missing = size - len(samples)
        pool = samples or self._fallback_sample(reservoir, order)
        self._count(row, "filled_samples", missing)
        logger.warning("filling %d missing samples of a batch with repeats", missing)
        return samples + [pool[i % len(pool)] for i in range(missing)]

    def _fallback_sample(self, reservoir: deque, order: list[int]) -> list[dict[str, Any]]:
        """One decodable sample: from recently read ones, else the first in the dataset."""
        whole = [Piece(s, 0, self.shard_set.shards[s].num_samples) for s in order]
        for raw in [*reversed(reservoir), *self._read(whole, row=None)]:
            sample = self._decode(raw, row=None)
            if sample is not None:
                return [sample]
        raise RuntimeError(f"no decodable sample in any of {len(order)} shards")

    def _count(self, row: int, name: str, amount: int = 1) -> None:
        self._counters[row, COUNTER_NAMES.index(name)] += amount


class ShardLoader(DataLoader):
    """DataLoader for a :class:`ShardStream`: publishes the epoch, counts consumed batches.

    Args:
        stream: the dataset; it emits whole batches, so this loader does not batch.
        num_workers: DataLoader worker processes per rank.
        pin_memory: pin batches in the main process.
        persistent_workers: keep workers alive across epochs.
        prefetch_factor: batches prefetched per worker (``None`` for the default).
        epoch_fn: returns the epoch to run when iteration starts (the Lightning trainer's
            ``current_epoch``); by default the stream's own counter.
        state_fn: what :meth:`state_dict` returns; by default the stream's state, which counts the
            batches this loader handed out. Lightning prefetches a batch, so its DataModule passes
            its own count of batches actually trained on.

    ``state_dict``/``load_state_dict`` make the loader resumable in Lightning's sense (it stores them
    in the fit loop's checkpoint state) and in torchdata's ``StatefulDataLoader`` sense.
    """

    def __init__(
        self,
        stream: ShardStream,
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        epoch_fn: Callable[[], int] | None = None,
        state_fn: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        super().__init__(
            stream,
            batch_size=None,
            collate_fn=_identity,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers and num_workers > 0,
            prefetch_factor=prefetch_factor if num_workers > 0 else None,
        )
        stream.num_workers = max(num_workers, 1)
        self.epoch_fn = epoch_fn
        self.state_fn = state_fn

    def state_dict(self) -> dict[str, int]:
        return self.state_fn() if self.state_fn is not None else self.dataset.state_dict()

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if state_dict:
            self.dataset.load_state_dict(state_dict)

    def __iter__(self) -> Iterator[Any]:
        stream: ShardStream = self.dataset  # type: ignore[assignment]
        stream.start_epoch(self.epoch_fn() if self.epoch_fn is not None else stream._next_epoch)
        return self._counted(super().__iter__(), stream)

    @staticmethod
    def _counted(batches: Iterator[Any], stream: ShardStream) -> Iterator[Any]:
        for batch in batches:
            stream.batches_consumed += 1
            yield batch
        stream.set_epoch(stream.epoch + 1)


def _identity(batch: Any) -> Any:
    return batch


def _buffer_shuffle(samples: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """Seeded shuffle through a buffer of ``size`` items (the WebDataset ``shuffle`` scheme)."""
    buffer: list[Any] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = sample
    rng.shuffle(buffer)
    yield from buffer
