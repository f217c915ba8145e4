"""Epoch plan: exactly-once splits across ranks and workers under each remainder policy."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import pytest

from sslkit.data.plan import rank_batches, shard_order, worker_plan

COUNTS = [[16] * 8, [10, 7, 0, 13, 9], [50], [3, 3, 3]]


@dataclass
class EpochReads:
    samples: Counter = field(default_factory=Counter)  # (shard, index) -> times read
    batch_sizes: dict[int, list[int]] = field(default_factory=dict)  # rank -> its batch sizes
    shards_per_worker: list[set[int]] = field(default_factory=list)


def _read(counts: list[int], world_size: int, num_workers: int, batch_size: int, remainder: str) -> EpochReads:
    order = shard_order(len(counts), seed=1, epoch=0, shuffle=True)
    reads = EpochReads()
    for rank, worker in itertools.product(range(world_size), range(num_workers)):
        plan = worker_plan(counts, order=order, rank=rank, world_size=world_size, worker=worker,
                           num_workers=num_workers, batch_size=batch_size, remainder=remainder)
        assert sum(plan.batch_sizes) == sum(p.stop - p.start for p in plan.pieces)
        assert all(j % num_workers == worker for j in plan.batch_ids)
        reads.batch_sizes.setdefault(rank, []).extend(plan.batch_sizes)
        reads.shards_per_worker.append({p.shard for p in plan.pieces})
        reads.samples.update((p.shard, i) for p in plan.pieces for i in range(p.start, p.stop))
    return reads


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("world_size,num_workers,batch_size", [(1, 1, 4), (2, 2, 3), (3, 2, 1), (2, 3, 5)])
def test_drop_and_pad_every_rank_same_batches(counts, world_size, num_workers, batch_size) -> None:
    total = sum(counts)
    for remainder in ("drop", "pad"):
        if remainder == "drop" and total < world_size * batch_size:
            continue
        reads = _read(counts, world_size, num_workers, batch_size, remainder)
        seen = reads.samples
        num_batches = {len(sizes) for sizes in reads.batch_sizes.values()}
        assert len(num_batches) == 1, "ranks differ in batch count"
        assert all(size == batch_size for sizes in reads.batch_sizes.values() for size in sizes)
        used = num_batches.pop() * world_size * batch_size
        assert sum(seen.values()) == used
        if remainder == "drop":
            assert max(seen.values()) == 1 and total - used < world_size * batch_size
        else:
            assert len(seen) == total and used - total < world_size * batch_size


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("world_size,num_workers,batch_size", [(1, 1, 4), (2, 2, 3), (3, 2, 1), (4, 3, 16)])
def test_none_is_exactly_once(counts, world_size, num_workers, batch_size) -> None:
    reads = _read(counts, world_size, num_workers, batch_size, "none")
    assert len(reads.samples) == sum(counts) and max(reads.samples.values()) == 1
    lengths = [len(sizes) for sizes in reads.batch_sizes.values()]
    assert max(lengths) - min(lengths) <= 1


def test_io_each_shard_one_worker_when_aligned() -> None:
    # 8 shards x 16 samples, 2 ranks x 2 workers, batch 8: each worker reads exactly 2 whole shards
    shards = _read([16] * 8, 2, 2, 8, "drop").shards_per_worker
    assert all(len(mine) == 2 for mine in shards)
    assert sorted(s for mine in shards for s in mine) == list(range(8))


def test_io_unaligned_shares_at_most_boundary_shards() -> None:
    counts = [100] * 37
    opened = Counter(s for mine in _read(counts, 2, 4, 32, "drop").shards_per_worker for s in mine)
    assert max(opened.values()) <= 2
    assert sum(1 for n in opened.values() if n > 1) <= 2 * 4 - 1


def test_shard_order_reshuffles_per_epoch_and_is_seeded() -> None:
    a, b = (shard_order(50, seed=0, epoch=e, shuffle=True) for e in (0, 1))
    assert sorted(a) == list(range(50)) and a != b
    assert a == shard_order(50, seed=0, epoch=0, shuffle=True)
    assert shard_order(5, seed=0, epoch=3, shuffle=False) == [0, 1, 2, 3, 4]


def test_drop_smaller_than_global_batch_raises() -> None:
    with pytest.raises(ValueError, match="global batch"):
        rank_batches(5, rank=0, world_size=2, batch_size=4, remainder="drop")
    with pytest.raises(ValueError, match="remainder"):
        rank_batches(5, rank=0, world_size=1, batch_size=4, remainder="cycle")
