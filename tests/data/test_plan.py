"""Epoch plan: a global order independent of the allocation, exact splits, elastic phases, locality."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from sslkit.data.stream import DEFAULT_MIX_STREAMED
from sslkit.data.plan import (
    EpochOrder, Phase, phase_steps, rank_batches, remaining_positions, shard_order, worker_plan,
)

COUNTS = [[16] * 8, [10, 7, 0, 13, 9], [50], [3, 3, 3]]


def _order(counts: list[int], epoch: int = 0, mix: int = 4, window: int = 8) -> EpochOrder:
    return EpochOrder(counts, seed=1, epoch=epoch, shuffle=True, mix=mix, window=window)


def _samples(order: EpochOrder, positions: np.ndarray) -> list[tuple[int, int]]:
    shard, index, _ = order.locate(positions)
    return list(zip(shard.tolist(), index.tolist()))


def _phase_reads(order: EpochOrder, remaining: np.ndarray, phase: Phase, remainder: str,
                 steps: int | None = None) -> tuple[Counter, dict[int, list[int]]]:
    """Samples read by every (rank, worker) in the first ``steps`` rank batches, and batch sizes per rank."""
    seen: Counter = Counter()
    sizes: dict[int, list[int]] = {}
    for rank, worker in itertools.product(range(phase.world_size), range(phase.num_workers)):
        plan = worker_plan(remaining, rank=rank, world_size=phase.world_size, worker=worker,
                           num_workers=phase.num_workers, batch_size=phase.batch_size, remainder=remainder)
        assert all(j % phase.num_workers == worker for j in plan.batch_ids)
        assert sum(plan.batch_sizes) == len(plan.positions)
        done = sum(size for j, size in zip(plan.batch_ids, plan.batch_sizes) if steps is None or j < steps)
        seen.update(_samples(order, plan.positions[:done]))
        sizes.setdefault(rank, []).extend(plan.batch_sizes)
    return seen, sizes


@pytest.mark.parametrize("counts", COUNTS)
def test_order_is_a_streamable_permutation(counts: list[int]) -> None:
    order = _order(counts)
    samples = _samples(order, np.arange(order.num_samples))
    assert sorted(samples) == [(s, i) for s, n in enumerate(counts) for i in range(n)]
    _, index, source = order.locate(np.arange(order.num_samples))
    shard = order.locate(np.arange(order.num_samples))[0]
    for s in range(len(counts)):  # read in source order, each shard's samples come front to back
        in_source_order = index[np.argsort(source)][shard[np.argsort(source)] == s]
        assert in_source_order.tolist() == list(range(counts[s]))


def test_order_seeded_and_reshuffled_per_epoch() -> None:
    a, b = (_samples(_order([16] * 8, epoch=e), np.arange(128)) for e in (0, 1))
    assert a != b and a == _samples(_order([16] * 8, epoch=0), np.arange(128))
    plain = EpochOrder([3, 2], seed=0, epoch=4, shuffle=False, mix=8, window=64)
    assert _samples(plain, np.arange(5)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert shard_order(5, seed=0, epoch=3, shuffle=False) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("world_size,num_workers,batch_size", [(1, 1, 4), (2, 2, 3), (3, 2, 1), (2, 3, 5)])
def test_drop_and_pad_every_rank_same_batches(counts, world_size, num_workers, batch_size) -> None:
    order, total = _order(counts), sum(counts)
    phase = Phase(world_size, num_workers, batch_size)
    for remainder in ("drop", "pad"):
        if remainder == "drop" and total < world_size * batch_size:
            continue
        seen, sizes = _phase_reads(order, np.arange(total), phase, remainder)
        num_batches = {len(s) for s in sizes.values()}
        assert len(num_batches) == 1 and all(size == batch_size for s in sizes.values() for size in s)
        used = num_batches.pop() * world_size * batch_size
        assert sum(seen.values()) == used
        if remainder == "drop":
            assert max(seen.values()) == 1 and total - used < world_size * batch_size
        else:
            assert len(seen) == total and used - total < world_size * batch_size


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("world_size,num_workers,batch_size", [(1, 1, 4), (2, 2, 3), (4, 3, 16)])
def test_none_is_exactly_once(counts, world_size, num_workers, batch_size) -> None:
    order = EpochOrder(counts, seed=0, epoch=0, shuffle=False)
    seen, sizes = _phase_reads(order, np.arange(sum(counts)), Phase(world_size, num_workers, batch_size), "none")
    assert len(seen) == sum(counts) and max(seen.values()) == 1
    lengths = [len(s) for s in sizes.values()]
    assert max(lengths) - min(lengths) <= 1


@pytest.mark.parametrize("before,after,steps", [
    (Phase(2, 2, 4), Phase(1, 3, 4), 5),  # 2 ranks x 2 workers -> 1 rank x 3 workers
    (Phase(1, 2, 4), Phase(3, 2, 4), 7),  # 1 -> 3 ranks
    (Phase(2, 1, 4), Phase(2, 1, 6), 3),  # another per-device batch
])
def test_elastic_phases_see_every_remaining_sample_once(before: Phase, after: Phase, steps: int) -> None:
    counts = [10] * 13
    order, total = _order(counts, mix=4, window=16), sum(counts)
    consumed, _ = _phase_reads(order, np.arange(total), before, "drop", steps=steps)
    remaining = remaining_positions(total, [Phase(before.world_size, before.num_workers, before.batch_size, steps)],
                                    "drop")
    assert len(remaining) == total - steps * before.world_size * before.batch_size
    assert not set(_samples(order, remaining)) & set(consumed)
    rest, sizes = _phase_reads(order, remaining, after, "drop")
    assert len(sizes[0]) == phase_steps(len(remaining), after, "drop")
    both = consumed + rest
    assert max(both.values()) == 1  # nothing repeated
    assert total - len(both) < after.world_size * after.batch_size  # only the new global batch's remainder dropped


def test_same_allocation_continues_the_same_batches() -> None:
    order, phase = _order([16] * 8), Phase(2, 2, 4)
    full = worker_plan(np.arange(128), rank=1, world_size=2, worker=1, num_workers=2, batch_size=4, remainder="drop")
    remaining = remaining_positions(128, [], "drop")  # a resumed same-allocation phase re-plans from scratch
    again = worker_plan(remaining, rank=1, world_size=2, worker=1, num_workers=2, batch_size=4, remainder="drop")
    assert np.array_equal(full.positions, again.positions) and full.batch_ids == again.batch_ids
    assert phase_steps(128, phase, "drop") == 16


def test_locality_worker_reads_few_shards() -> None:
    # 64 shards x 50, mixing groups of 4, 2 ranks x 4 workers: a worker's block spans 8 shards' worth
    order = _order([50] * 64, mix=4, window=32)
    for rank, worker in itertools.product(range(2), range(4)):
        plan = worker_plan(np.arange(3200), rank=rank, world_size=2, worker=worker, num_workers=4,
                           batch_size=8, remainder="drop")
        shards = set(order.locate(plan.positions)[0].tolist())
        assert len(shards) <= 8 + 2 * 4  # its own groups plus at most the two boundary groups


def test_class_sorted_shards_give_mixed_batches() -> None:
    # 10 classes written class after class: 40 shards of 25, each a single class
    counts, batch = [25] * 40, 64
    labels = np.repeat(np.arange(40) // 4, 25)
    iid = 10 * (1 - 0.9**batch)
    order = EpochOrder(counts, seed=0, epoch=0, shuffle=True, mix=DEFAULT_MIX_STREAMED, window=1000)
    shard, index, _ = order.locate(np.arange(1000 - 1000 % batch))
    classes = labels[shard * 25 + index].reshape(-1, batch)
    assert np.mean([len(set(row)) for row in classes]) >= 0.95 * iid


def _iid_distinct(labels: np.ndarray, batch: int) -> float:
    """E[distinct classes] in ``batch`` samples drawn without replacement."""
    from math import comb
    n = len(labels)
    return float(sum(1 - comb(n - c, batch) / comb(n, batch) for c in np.bincount(labels)))


@pytest.mark.parametrize("batch", [64, 256])
def test_indexed_shards_holding_several_sorted_classes_give_iid_batches(batch: int) -> None:
    # 100 classes of 60 written class after class into 6 shards of 1,000: each shard ~17 classes in
    # order. Streamed in tar order, a group only mixes the classes its shards are at (the bug: 0.44 of
    # i.i.d. at 64); indexed, the group's samples are permuted together.
    labels, counts = np.repeat(np.arange(100), 60), [1000] * 6
    iid = _iid_distinct(labels, batch)

    def distinct(random_access: bool) -> float:
        order = EpochOrder(counts, seed=0, epoch=0, shuffle=True, random_access=random_access, window=1000,
                           mix=len(counts) if random_access else DEFAULT_MIX_STREAMED)
        shard, index, _ = order.locate(np.arange(6000 - 6000 % batch))
        return float(np.mean([len(set(row)) for row in labels[shard * 1000 + index].reshape(-1, batch)]))

    assert distinct(random_access=True) >= 0.95 * iid
    assert distinct(random_access=False) < 0.7 * iid


def test_indexed_order_is_a_permutation_and_identity_for_evaluation() -> None:
    counts = [7, 5, 9, 3]
    starts = np.concatenate([[0], np.cumsum(counts)])
    for epoch in (0, 1):
        order = EpochOrder(counts, seed=3, epoch=epoch, shuffle=True, mix=2, random_access=True)
        shard, index, _ = order.locate(np.arange(24))
        flat = starts[shard] + index
        assert sorted(flat.tolist()) == list(range(24)) and flat.tolist() != list(range(24))
        assert all(0 <= i < counts[s] for s, i in zip(shard, index))
    shard, index, _ = EpochOrder(counts, seed=3, epoch=0, shuffle=False, mix=2, random_access=True).locate(
        np.arange(24))
    assert (starts[shard] + index).tolist() == list(range(24))


def test_drop_rank_batches_and_policy() -> None:
    assert rank_batches(5, rank=0, world_size=2, batch_size=4, remainder="drop") == (0, [])
    with pytest.raises(ValueError, match="remainder"):
        rank_batches(5, rank=0, world_size=1, batch_size=4, remainder="cycle")
