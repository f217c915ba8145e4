"""The epoch plan: which samples each (rank, worker) reads, as pure functions of counts, seed and epoch.

Every rank and every DataLoader worker computes the same plan independently, so no communication is
needed. One epoch is a *virtual sample sequence*: the shards in epoch order (shuffled with
``seed``/``epoch`` for training, manifest order for evaluation), each shard's samples in tar order.

Splitting (``R`` ranks, ``W`` workers per rank, ``B`` samples per batch):

1. Rank ``r`` takes the contiguous range ``[r * L, (r + 1) * L)`` of the sequence, ``L = n_b * B``,
   where ``n_b`` (batches per rank) is set by the remainder policy:

   - ``"drop"`` (training default): ``n_b = N // (R * B)``; the last ``N mod (R * B)`` samples of the
     epoch's sequence are not used. The shard order is reshuffled each epoch, so a different tail is
     dropped each time. Every batch is full and every rank gets the same number of batches.
   - ``"pad"``: ``n_b = ceil(N / (R * B))``; the sequence wraps around, so up to ``R * B - 1``
     samples from the start of the epoch are seen twice. Every batch is full.
   - ``"none"`` (evaluation): every sample exactly once; ranks take ``ceil(N / B)`` batches between
     them in contiguous blocks, the very last batch may be partial and ranks may differ by one batch.

2. Rank batch ``j`` belongs to worker ``j % W`` (the order a DataLoader round-robins workers in).
   A worker's batches are one contiguous range of the rank's range, so a worker opens only the
   shards that range overlaps: with ``S >= R * W`` shards a worker reads about ``S / (R * W)``
   whole shards; only a shard straddling two ranges is opened by both workers, the second one
   skipping the first part without decoding. With fewer shards than workers the same rule splits
   shards at sample level.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REMAINDER_POLICIES = ("drop", "pad", "none")


@dataclass(frozen=True)
class Piece:
    """Samples ``[start, stop)`` (tar order) of shard number ``shard``."""

    shard: int
    start: int
    stop: int


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker of one rank reads and emits in one epoch."""

    pieces: tuple[Piece, ...]
    batch_ids: tuple[int, ...]  # rank-level index of each batch this worker emits
    batch_sizes: tuple[int, ...]


def shard_order(num_shards: int, *, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """Epoch order of the shards: a permutation seeded by ``(seed, epoch)``, or identity."""
    if not shuffle:
        return list(range(num_shards))
    return [int(i) for i in np.random.default_rng([seed, epoch]).permutation(num_shards)]


def rank_batches(
    num_samples: int, *, rank: int, world_size: int, batch_size: int, remainder: str
) -> tuple[int, list[int]]:
    """Start of a rank's range in the virtual sequence, and its batch sizes."""
    if remainder not in REMAINDER_POLICIES:
        raise ValueError(f"remainder must be one of {REMAINDER_POLICIES}, got {remainder!r}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world_size {world_size}")
    global_batch = world_size * batch_size
    if remainder == "none":
        total = -(-num_samples // batch_size)
        first, last = rank * total // world_size, (rank + 1) * total // world_size
        stop = min(last * batch_size, num_samples)
        sizes = [min(batch_size, stop - b * batch_size) for b in range(first, last)]
        return first * batch_size, sizes
    if remainder == "drop":
        num_batches = num_samples // global_batch
        if num_batches == 0:
            raise ValueError(
                f"{num_samples} samples are fewer than one global batch ({world_size} x {batch_size});"
                " use remainder='pad' or a smaller batch"
            )
    else:
        num_batches = -(-num_samples // global_batch)
    return rank * num_batches * batch_size, [batch_size] * num_batches


def worker_plan(
    counts: Sequence[int],
    *,
    order: Sequence[int],
    rank: int,
    world_size: int,
    worker: int,
    num_workers: int,
    batch_size: int,
    remainder: str,
) -> WorkerPlan:
    """The pieces of shards one worker reads and the batches it emits (see the module docstring)."""
    start, sizes = rank_batches(
        sum(counts), rank=rank, world_size=world_size, batch_size=batch_size, remainder=remainder
    )
    quotas = [sum(sizes[worker_id::num_workers]) for worker_id in range(num_workers)]
    begin = start + sum(quotas[:worker])
    ids = tuple(range(worker, len(sizes), num_workers))
    pieces = _pieces(counts, order, begin, begin + quotas[worker])
    return WorkerPlan(pieces, ids, tuple(sizes[j] for j in ids))


def _pieces(counts: Sequence[int], order: Sequence[int], begin: int, end: int) -> tuple[Piece, ...]:
    """Cut the virtual range ``[begin, end)`` (wrapping past the end) into per-shard pieces."""
    total = sum(counts)
    starts = np.cumsum([0] + [counts[s] for s in order])[:-1].tolist()
    pieces = []
    i = begin
    while i < end:
        pos = i % total
        k = bisect_right(starts, pos) - 1
        shard = order[k]
        within = pos - starts[k]
        take = min(counts[shard] - within, end - i)
        pieces.append(Piece(shard, within, within + take))
        i += take
    return tuple(pieces)
