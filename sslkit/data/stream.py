"""Streaming reader: an IterableDataset over WebDataset shards with exact, elastic, resumable epochs.

``ShardStream`` emits whole batches (collated inside the DataLoader worker, so masking collators run
there too) following the epoch plan of :mod:`sslkit.data.plan`: the epoch's global order depends on
the shards, the seed and the epoch only. Shards with a sample index (those ``sslkit data shard``
writes) are read by offset and the samples of ``mix_shards`` shards are permuted together, so even
class-sorted shards give i.i.d.-like batches; shards without one (written elsewhere, or remote) are
streamed, each worker interleaving the ``mix_shards`` shards of a group in tar order, and a
deterministic window permutation replaces a per-worker shuffle buffer. ``ShardLoader`` is the
DataLoader that drives it: it tells the workers the epoch, the phases already run in it and the
resume point through small shared-memory tensors (so persistent workers see them too) and counts
the batches handed to the consumer.

Resume: the state is the epoch and its phases (allocation and steps consumed, see
:mod:`sslkit.data.plan`). Under the same ranks, workers and per-device batch the last phase simply
continues: rank batch ``j`` comes from logical worker ``j % W``, so resuming at batch ``k`` physical
worker ``p`` plays logical worker ``(p + k) % W`` and drops its batches below ``k`` without reading
them. Under another allocation the epoch's remaining samples are re-split, each seen exactly once.

Corrupt data never ends a run: a shard that fails to open, ends before its manifest count, holds
more samples than that, whose sha256 differs from the manifest's (computed while it is streamed), or
(indexed) whose index describes another shard or a sample of which differs from its index digest,
is marked corrupt: named once in the log, counted once in ``data/corrupt_shards`` (distinct shards),
and not read again. A sample whose image does not decode is dropped and counted in
``data/skipped_samples``. To keep every batch full and every rank at the same batch count, missing
places are filled by repeating decodable samples (``data/filled_samples``). The counters and the
corrupt-shard marks are part of :meth:`ShardStream.state_dict`, so they survive a resume.
"""

from __future__ import annotations

import io
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from sslkit.data.collate import collate_samples, pil_to_tensor
from sslkit.data.manifest import resolve_shards
from sslkit.data.plan import (
    EpochOrder, Phase, check_fits, phase_steps, rank_batches, remaining_positions, worker_plan,
)
from sslkit.data.sample_index import INDEX_SUFFIX, index_location
from sslkit.data.shard_reader import IndexedShardReader, ShardReader
from sslkit.errors import UserError

logger = logging.getLogger(__name__)

COUNTER_NAMES = ("skipped_samples", "corrupt_shards", "filled_samples")
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
# Shards per mixing group (docs/benchmarks.md, "Class mixing"). Indexed: all of them, one permutation
# of the whole set (a worker keeps every shard's index, ~80 bytes a sample); streamed: 64 interleaved.
DEFAULT_MIX_STREAMED = 64
_OPEN_FILES = 64  # indexed shards a worker keeps open at once
_MAX_WORKERS = 256  # rows of the shared counter table; worker ids wrap beyond it
_MAX_PHASES = 64  # allocations one epoch may see (one per resume under a changed allocation)
_EPOCH, _START, _RANK, _WORLD, _PHASES = range(5)  # slots of the shared control tensor
_EVAL_CHUNK = 4096

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
        shuffle: shuffle per epoch (training); ``False`` gives manifest order (evaluation).
        shuffle_buffer: samples per permuted window of the global order (a reader holds one window).
        mix_shards: shards mixed per group (``None``: all for indexed shards, 64 for streamed ones).
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
        mix_shards: int | None = None,
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
        self.random_access = _all_indexed(self.shard_set.shards, warn=shuffle)
        self.mix_shards = mix_shards or (len(self.shard_set.shards) if self.random_access else DEFAULT_MIX_STREAMED)
        self.seed = seed
        self.remainder = remainder
        self._rank, self._world_size = rank, world_size
        self.num_workers = 1  # set by ShardLoader; part of the resume state
        self.epoch = 0
        self.batches_consumed = 0  # in the epoch, over all its phases
        self.first_batch = 0  # where the current epoch started (> 0 when resumed)
        self._closed: list[Phase] = []  # phases of this epoch before the current one
        self._next_epoch = 0
        self._resume: tuple[int, list[Phase]] | None = None
        self._base_counts = {"skipped_samples": 0, "filled_samples": 0}
        self._control = torch.zeros(5, dtype=torch.int64).share_memory_()
        self._phase_table = torch.zeros(_MAX_PHASES, 4, dtype=torch.int64).share_memory_()
        self._counters = torch.zeros(_MAX_WORKERS, len(COUNTER_NAMES), dtype=torch.int64).share_memory_()
        self._corrupt = torch.zeros(len(self.shard_set.shards), dtype=torch.uint8).share_memory_()
        check_fits(self.num_samples, self.rank_and_world_size()[1], batch_size, remainder)

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

    def allocation(self) -> Phase:
        """This run's allocation as a (not yet consumed) phase."""
        return Phase(self.rank_and_world_size()[1], self.num_workers, self.batch_size)

    def __len__(self) -> int:
        """Batches this rank gets in the current (or, with a resume pending, the coming) epoch."""
        if self.remainder == "none":
            rank, world_size = self.rank_and_world_size()
            return len(rank_batches(self.num_samples, rank=rank, world_size=world_size,
                                    batch_size=self.batch_size, remainder="none")[1])
        closed = self._layout(self._next_epoch)[0] if self._resume is not None else self._closed
        remaining = len(remaining_positions(self.num_samples, closed, self.remainder)) if closed else self.num_samples
        return sum(p.steps for p in closed) + phase_steps(remaining, self.allocation(), self.remainder)

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the next iteration (it otherwise advances by one after each complete epoch)."""
        self._next_epoch = epoch

    def _layout(self, epoch: int) -> tuple[list[Phase], int]:
        """Closed phases and the first step of the current phase, for ``epoch`` (resume applied)."""
        if not self._resume or self._resume[0] != epoch:
            return [], 0
        phases = self._resume[1]
        if phases and phases[-1].same_allocation(self.allocation()):
            return phases[:-1], phases[-1].steps
        return [p for p in phases if p.steps > 0], 0

    def start_epoch(self, epoch: int) -> int:
        """Publish epoch, phases, resume point and rank to the workers; returns the first batch index."""
        closed, start = self._layout(epoch)
        if len(closed) > _MAX_PHASES:
            raise RuntimeError(f"epoch {epoch} was resumed under more than {_MAX_PHASES} allocations")
        self._resume = None
        rank, world_size = self.rank_and_world_size()
        self._control.copy_(torch.tensor([epoch, start, rank, world_size, len(closed)]))
        for i, p in enumerate(closed):
            self._phase_table[i] = torch.tensor([p.world_size, p.num_workers, p.batch_size, p.steps])
        self.epoch, self._closed = epoch, closed
        self.batches_consumed = self.first_batch = sum(p.steps for p in closed) + start
        return self.batches_consumed

    @property
    def started(self) -> bool:
        """Whether an epoch was started (its state is then this stream's, not a restored one)."""
        return int(self._control[_WORLD]) > 0

    def state_dict(self, batches_consumed: int | None = None) -> dict[str, Any]:
        """Where this rank is: the epoch, its phases and the counters (ranks advance in lockstep).

        Args:
            batches_consumed: batches of the epoch actually trained on, if the caller knows better
                than this stream's count of batches handed out (Lightning prefetches one).
        """
        consumed = self.batches_consumed if batches_consumed is None else batches_consumed
        epoch, phases = self.epoch, [*self._closed, _with_steps(self.allocation(), consumed, self._closed)]
        if consumed >= len(self):
            epoch, phases = epoch + 1, []
        counters = self.counters()
        return {
            "epoch": epoch,
            "batches_consumed": 0 if not phases else consumed,
            "phases": [[p.world_size, p.num_workers, p.batch_size, p.steps] for p in phases],
            "seed": self.seed,
            "mix_shards": self.mix_shards,
            "random_access": self.random_access,
            "shuffle_buffer": self.shuffle_buffer,
            "num_samples": self.num_samples,
            "skipped_samples": counters["data/skipped_samples"],
            "filled_samples": counters["data/filled_samples"],
            "corrupt": [int(i) for i in self._corrupt.nonzero().flatten().tolist()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at ``state``'s epoch and batch on the next iteration (on any allocation)."""
        self._next_epoch = int(state["epoch"])
        self._base_counts = {k: int(state.get(k, 0)) for k in self._base_counts}
        for i in state.get("corrupt", []):
            if 0 <= int(i) < len(self._corrupt):
                self._corrupt[int(i)] = 1
        changed = [k for k in ("seed", "mix_shards", "shuffle_buffer", "num_samples", "random_access")
                   if state.get(k, getattr(self, k)) != getattr(self, k)]
        if "phases" not in state:
            changed.append("sslkit's epoch plan")
        if changed:
            logger.warning("data stream state does not match this run (%s changed): the epoch's order is"
                           " different; restarting epoch %d from its first batch", ", ".join(changed),
                           self._next_epoch)
            return
        phases = [Phase(*map(int, row)) for row in state.get("phases", [])]
        if phases and not phases[-1].same_allocation(self.allocation()):
            logger.warning("resuming epoch %d under another allocation (ranks x workers x batch %s -> %s):"
                           " its %d remaining samples are re-split, each used once", self._next_epoch,
                           _alloc(phases[-1]), _alloc(self.allocation()),
                           len(remaining_positions(self.num_samples, phases, self.remainder)))
        self._resume = (self._next_epoch, phases)

    def counters(self) -> dict[str, int]:
        """Totals: ``data/skipped_samples``, ``data/corrupt_shards`` (distinct shards), ``data/filled_samples``."""
        totals = dict(zip(COUNTER_NAMES, self._counters.sum(dim=0).tolist()))
        totals["corrupt_shards"] = int(self._corrupt.sum())
        for name, base in self._base_counts.items():
            totals[name] += base
        return {f"data/{name}": int(totals[name]) for name in COUNTER_NAMES}

    def __iter__(self) -> Iterator[Any]:
        if not self.started:  # iterated directly, not through ShardLoader
            self.start_epoch(self._next_epoch)
        epoch, start, rank, world_size, num_closed = (int(v) for v in self._control.tolist())
        closed = [Phase(*map(int, row)) for row in self._phase_table[:num_closed].tolist()]
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        logical = (worker + start) % num_workers
        order = EpochOrder([s.num_samples for s in self.shard_set.shards], seed=self.seed, epoch=epoch,
                           shuffle=self.shuffle, mix=self.mix_shards, window=self.shuffle_buffer,
                           random_access=self.random_access)
        remaining = (np.arange(order.num_samples, dtype=np.int64) if self.remainder == "none"
                     else remaining_positions(order.num_samples, closed, self.remainder))
        plan = worker_plan(remaining, rank=rank, world_size=world_size, worker=logical,
                           num_workers=num_workers, batch_size=self.batch_size, remainder=self.remainder)
        skip = sum(1 for j in plan.batch_ids if j < start)
        positions = plan.positions[sum(plan.batch_sizes[:skip]):]
        yield from self._batches(positions, plan.batch_sizes[skip:], order, worker % _MAX_WORKERS)

    def _batches(self, positions: np.ndarray, sizes: Sequence[int], order: EpochOrder, row: int) -> Iterator[Any]:
        raw = self._read(positions, order, row)
        reservoir: deque[dict[str, Any]] = deque(maxlen=self.batch_size)  # raw samples for filling
        for size in sizes:
            chunk = [r for r in (next(raw) for _ in range(size)) if r is not None]
            reservoir.extend(chunk)
            samples = [s for s in (self._decode(r, row) for r in chunk) if s is not None]
            if len(samples) < size:
                samples = self._fill(samples, size, reservoir, order, row)
            yield self.collate_fn(samples)

    def _read(self, positions: np.ndarray, order: EpochOrder, row: int | None) -> Iterator[dict[str, Any] | None]:
        """Raw samples at ``positions`` in that order (``None`` where unreadable).

        Indexed shards are read sample by sample in emission order; streamed ones a window at a time,
        each window's samples fetched in tar order.
        """
        shards = self.shard_set.shards
        readers: dict[int, ShardReader | IndexedShardReader] = {}
        open_files: dict[int, None] = {}  # indexed readers with an open file, oldest first

        def fetch(s: int, index: int) -> dict[str, Any] | None:
            if self._corrupt[s]:
                return None
            if s not in readers:
                info = shards[s]
                readers[s] = (IndexedShardReader(info.url, info.num_samples, info.sha256, info.url + INDEX_SUFFIX)
                              if self.random_access else ShardReader(info.url, info.num_samples, info.sha256))
            reader = readers[s]
            raw = reader.get(index)
            if self.random_access:
                open_files.pop(s, None)
                open_files[s] = None
                if len(open_files) > _OPEN_FILES:
                    oldest = next(iter(open_files))
                    readers[oldest].close()
                    del open_files[oldest]
            self._check(reader, s, row)
            return raw

        step = order.window if order.window > 1 else _EVAL_CHUNK
        cuts = np.flatnonzero(np.diff(positions // step)) + 1 if len(positions) else []
        try:
            for chunk in np.split(positions, cuts):
                shard, index, source = order.locate(chunk)
                if self.random_access:
                    yield from (fetch(int(s), int(i)) for s, i in zip(shard, index))
                    continue
                got = {int(i): fetch(int(shard[i]), int(index[i])) for i in np.argsort(source, kind="stable")}
                yield from (got[i] for i in range(len(chunk)))
        finally:
            for reader in readers.values():
                reader.close()

    def _check(self, reader: ShardReader, shard: int, row: int | None) -> None:
        """Mark a shard corrupt the first time one of its readers fails; name it once."""
        if reader.error is None or row is None or self._corrupt[shard]:
            return
        self._corrupt[shard] = 1
        logger.warning("shard %s is corrupt (%s): marked, not read again", reader.url, reader.error)

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
        self, samples: list[dict[str, Any]], size: int, reservoir: deque, order: EpochOrder, row: int
    ) -> list[dict[str, Any]]:
        """Fill missing places of a batch by repeating decodable samples (batch counts must hold)."""
        missing = size - len(samples)
        pool = samples or self._fallback_sample(reservoir, order)
        self._count(row, "filled_samples", missing)
        logger.warning("filling %d missing samples of a batch with repeats", missing)
        return samples + [pool[i % len(pool)] for i in range(missing)]

    def _fallback_sample(self, reservoir: deque, order: EpochOrder) -> list[dict[str, Any]]:
        """One decodable sample: from recently read ones, else the first in the dataset."""
        for raw in reversed(reservoir):
            sample = self._decode(raw, row=None)
            if sample is not None:
                return [sample]
        for raw in self._read(np.arange(order.num_samples, dtype=np.int64), order, row=None):
            sample = None if raw is None else self._decode(raw, row=None)
            if sample is not None:
                return [sample]
        shards = self.shard_set.shards
        raise UserError(
            f"no decodable sample in any of the {len(shards)} shards ({shards[0].url}, ...): every shard is corrupt "
            "or every image undecodable (the log names each); check them with `sslkit data verify DIR` and re-shard")

    def _count(self, row: int, name: str, amount: int = 1) -> None:
        self._counters[row, COUNTER_NAMES.index(name)] += amount


def _all_indexed(shards: Sequence[Any], *, warn: bool) -> bool:
    """Whether every shard has its sample index (then the plan permutes samples across shards)."""
    missing = sum(1 for shard in shards if index_location(shard.url) is None)
    if missing and warn:
        logger.warning("%d of %d shards (%s, ...) have no sample index (written by another tool, an older"
                       " sslkit, or remote): they are streamed in tar order, so shards written class after"
                       " class mix less; `sslkit data index DIR` adds the indexes (`sslkit data shard` writes them)",
                       missing, len(shards), shards[0].url)
    return not missing


def _with_steps(allocation: Phase, consumed: int, closed: Sequence[Phase]) -> Phase:
    return Phase(allocation.world_size, allocation.num_workers, allocation.batch_size,
                 consumed - sum(p.steps for p in closed))


def _alloc(p: Phase) -> str:
    return f"{p.world_size}x{p.num_workers}x{p.batch_size}"
