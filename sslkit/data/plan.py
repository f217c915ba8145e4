"""The epoch plan: which samples each (rank, worker) reads, as pure functions of counts, seed and epoch.

Every rank and every DataLoader worker computes the same plan independently, so no communication is
needed.

**The epoch's global order** is a function of the shards, the seed and the epoch only (never of the
number of ranks, workers or the per-device batch), so a run resumed on another allocation can finish
exactly the samples its epoch had left:

1. The shards are permuted, seeded by ``(seed, epoch)`` (identity for evaluation).
2. Consecutive shards of that order form *mixing groups* of ``mix`` shards.

   - **Indexed shards** (``random_access``: every shard has its sample index, which the shard writer
     writes): a group's samples are permuted together, seeded, so a batch is a uniform draw from the
     group whatever order the shards were written in (class after class included). A reader fetches
     each sample by offset (:class:`sslkit.data.shard_reader.IndexedShardReader`).
   - **Streamed shards** (no index, or remote): a group's samples are interleaved by a seeded choice
     sequence (a uniform random interleaving of the shards' sample lists) in which each shard's
     samples keep their tar order, so a reader streams every shard front to back and never seeks.
     One-class shards give class-mixed batches; a shard holding several classes in order gives them
     one after the other.
3. Streamed only: the interleaved sequence is cut into windows of ``window`` samples and each window
   is permuted (seeded), in place of a per-worker shuffle buffer (which would depend on the worker
   count). A reader holds at most one window of raw samples.

**Splitting one epoch** (``R`` ranks, ``W`` workers per rank, ``B`` samples per batch): the samples
still to be used, in global order, are the *remaining sequence*; rank ``r`` takes its contiguous range
``[r * n_b * B, (r + 1) * n_b * B)`` of it, where ``n_b`` (batches per rank) is set by the remainder
policy:

- ``"drop"`` (training default): ``n_b = M // (R * B)`` for ``M`` remaining samples; the last
  ``M mod (R * B)`` are not used. The order is reshuffled each epoch, so a different tail is dropped.
- ``"pad"``: ``n_b = ceil(M / (R * B))``; the sequence wraps around, so up to ``R * B - 1`` samples
  are seen twice. Every batch is full.
- ``"none"`` (evaluation): every sample exactly once; ranks take ``ceil(N / B)`` batches between them
  in contiguous blocks, the last batch may be partial and ranks may differ by one batch.

Rank batch ``j`` belongs to worker ``j % W`` (the order a DataLoader round-robins workers in), and a
worker's batches are one contiguous block of the rank's range, so a worker reads only the windows,
groups and shards its block overlaps (about ``S / (R * W)`` shards' worth, across at most a few
mixing groups).

**Phases and resume.** A stretch of an epoch run under one allocation ``(R, W, B)`` is a *phase*;
the checkpointed state of an epoch is its list of phases with the number of steps each consumed.
After ``k`` steps of a phase, worker ``w`` of every rank has delivered its first ``ceil((k - w) / W)``
batches, so the consumed samples are known exactly from ``k``. Resuming under the same allocation
continues the last phase (the very batches an uninterrupted run would have produced, bitwise).
Resuming under another allocation closes the last phase and starts a new one over the samples the
epoch has left, re-split among the new ``R x W``: every remaining sample is seen exactly once (under
``"drop"``, up to ``R * B - 1`` of them are dropped as the new global batch requires; never repeated).
The steps of that epoch become the consumed steps plus the new phase's; later epochs follow the new
allocation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

REMAINDER_POLICIES = ("drop", "pad", "none")


@dataclass(frozen=True)
class Phase:
    """Part of an epoch run under one allocation, and the steps (batches per rank) it consumed."""

    world_size: int
    num_workers: int
    batch_size: int
    steps: int = 0

    def same_allocation(self, other: Phase) -> bool:
        return (self.world_size, self.num_workers, self.batch_size) == (
            other.world_size, other.num_workers, other.batch_size)


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker of one rank emits in one phase: global positions in order, and its batches."""

    positions: np.ndarray  # (n,) int64 global positions, emission order
    batch_ids: tuple[int, ...]  # phase-level rank batch index of each batch this worker emits
    batch_sizes: tuple[int, ...]


class EpochOrder:
    """The global sample order of one epoch: position ``p`` -> (shard, index in tar order).

    Args:
        counts: samples per shard, in manifest order.
        seed: base seed.
        epoch: the epoch (seeds the shard permutation, interleavings and window permutations).
        shuffle: ``False`` gives manifest order (no mixing, no windows): evaluation.
        mix: shards per mixing group.
        window: samples per permuted window (``<= 1``: no permutation); streamed shards only.
        random_access: the shards are indexed: a group's samples are permuted together.
    """

    def __init__(self, counts: Sequence[int], *, seed: int, epoch: int, shuffle: bool, mix: int = 1,
                 window: int = 1, random_access: bool = False) -> None:
        if mix < 1:
            raise ValueError(f"mix must be >= 1, got {mix}")
        self.counts = np.asarray(counts, dtype=np.int64)
        self.seed, self.epoch = seed, epoch
        self.shuffle = shuffle
        self.mix = mix if shuffle else 1
        self.random_access = random_access
        self.window = max(int(window), 1) if shuffle and not random_access else 1
        self.shard_order = np.asarray(shard_order(len(counts), seed=seed, epoch=epoch, shuffle=shuffle),
                                      dtype=np.int64)
        groups = [self.shard_order[i:i + self.mix] for i in range(0, len(counts), self.mix)]
        self.groups = groups
        sizes = np.array([self.counts[g].sum() for g in groups], dtype=np.int64)
        self.group_starts = np.concatenate([[0], np.cumsum(sizes)])
        self.num_samples = int(self.group_starts[-1])

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(shard, index, source)`` per global position; ``source`` orders reads within a window."""
        positions = np.asarray(positions, dtype=np.int64)
        source = self._unwindow(positions)
        group = np.searchsorted(self.group_starts, source, side="right") - 1
        shard = np.empty_like(source)
        index = np.empty_like(source)
        for g in np.unique(group):
            mask = group == g
            member, occurrence = self._interleave(int(g))
            offset = source[mask] - self.group_starts[g]
            shard[mask] = self.groups[g][member[offset]]
            index[mask] = occurrence[offset]
        return shard, index, source

    def _unwindow(self, positions: np.ndarray) -> np.ndarray:
        if self.window <= 1:
            return positions.copy()
        out = np.empty_like(positions)
        starts = positions - positions % self.window
        for start in np.unique(starts):
            mask = starts == start
            perm = self._window_perm(int(start))
            out[mask] = start + perm[positions[mask] - start]
        return out

    @lru_cache(maxsize=8)  # noqa: B019 -- a reader walks windows in order; the cache lives with the order
    def _window_perm(self, start: int) -> np.ndarray:
        size = min(self.window, self.num_samples - start)
        return np.random.default_rng([self.seed, self.epoch, 1, start]).permutation(size)

    @lru_cache(maxsize=4)  # noqa: B019
    def _interleave(self, group: int) -> tuple[np.ndarray, np.ndarray]:
        """Member shard (index into the group) and its sample index, per position of the group."""
        counts = self.counts[self.groups[group]]
        member = np.repeat(np.arange(len(counts)), counts)
        if self.random_access:  # every (shard, index) pair of the group, permuted
            occurrence = np.arange(len(member)) - np.repeat(np.cumsum(counts) - counts, counts)
            if self.shuffle:
                perm = np.random.default_rng([self.seed, self.epoch, 3, group]).permutation(len(member))
                member, occurrence = member[perm], occurrence[perm]
            return member, occurrence
        if len(counts) > 1:
            member = np.random.default_rng([self.seed, self.epoch, 2, group]).permutation(member)
        occurrence = np.empty_like(member)
        for m in range(len(counts)):
            hits = member == m
            occurrence[hits] = np.arange(int(hits.sum()))
        return member, occurrence


def shard_order(num_shards: int, *, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """Epoch order of the shards: a permutation seeded by ``(seed, epoch)``, or identity."""
    if not shuffle:
        return list(range(num_shards))
    return [int(i) for i in np.random.default_rng([seed, epoch]).permutation(num_shards)]


def rank_batches(
    num_samples: int, *, rank: int, world_size: int, batch_size: int, remainder: str
) -> tuple[int, list[int]]:
    """Start of a rank's range in the remaining sequence, and its batch sizes."""
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
    num_batches = num_samples // global_batch if remainder == "drop" else -(-num_samples // global_batch)
    return rank * num_batches * batch_size, [batch_size] * num_batches


def check_fits(num_samples: int, world_size: int, batch_size: int, remainder: str) -> None:
    """Raise when ``"drop"`` would leave no batch at all."""
    if remainder == "drop" and num_samples < world_size * batch_size:
        raise ValueError(
            f"{num_samples} samples are fewer than one global batch ({world_size} x {batch_size});"
            " use remainder='pad' or a smaller batch"
        )


def worker_quota(sizes: Sequence[int], worker: int, num_workers: int) -> tuple[int, tuple[int, ...]]:
    """Samples before worker ``worker``'s block in its rank's range, and its batch ids."""
    before = sum(sum(sizes[w::num_workers]) for w in range(worker))
    return before, tuple(range(worker, len(sizes), num_workers))


def remaining_positions(num_samples: int, phases: Sequence[Phase], remainder: str) -> np.ndarray:
    """Global positions the epoch has not consumed after ``phases``, in global order."""
    remaining = np.arange(num_samples, dtype=np.int64)
    for phase in phases:
        consumed = np.zeros(len(remaining), dtype=bool)
        for rank in range(phase.world_size):
            start, sizes = rank_batches(len(remaining), rank=rank, world_size=phase.world_size,
                                        batch_size=phase.batch_size, remainder=remainder)
            for worker in range(phase.num_workers):
                before, ids = worker_quota(sizes, worker, phase.num_workers)
                done = sum(1 for j in ids if j < phase.steps)
                begin = start + before
                consumed[np.arange(begin, begin + done * phase.batch_size) % max(len(remaining), 1)] = True
        remaining = remaining[~consumed]
    return remaining


def phase_steps(num_remaining: int, phase: Phase, remainder: str) -> int:
    """Batches per rank that ``phase``'s allocation makes of ``num_remaining`` samples."""
    return len(rank_batches(num_remaining, rank=0, world_size=phase.world_size, batch_size=phase.batch_size,
                            remainder=remainder)[1])


def worker_plan(
    remaining: np.ndarray, *, rank: int, world_size: int, worker: int, num_workers: int, batch_size: int,
    remainder: str,
) -> WorkerPlan:
    """The positions one worker emits and its batches, splitting ``remaining`` (see the module docstring)."""
    start, sizes = rank_batches(len(remaining), rank=rank, world_size=world_size, batch_size=batch_size,
                                remainder=remainder)
    before, ids = worker_quota(sizes, worker, num_workers)
    quota = sum(sizes[j] for j in ids)
    index = np.arange(start + before, start + before + quota) % max(len(remaining), 1)  # "pad" wraps
    return WorkerPlan(remaining[index], ids, tuple(sizes[j] for j in ids))
