"""Class mixing of the epoch plan: mean distinct classes per batch against the i.i.d. expectation.

Pure plan arithmetic (no images): a dataset of ``--classes`` classes written class after class
(``--no-shuffle`` shards: each shard one or two classes) or in random order (shuffled on write), cut
into shards of ``--per-shard``; for each ``mix_shards`` the batches of one epoch of
:class:`sslkit.data.plan.EpochOrder` are scored, with the shards a worker of ``R x W`` opens.

    python bench/mixing.py --samples 10000 --classes 10 --per-shard 100 --batch 64
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from sslkit.data.plan import EpochOrder, worker_plan


def distinct_per_batch(labels: np.ndarray, counts: list[int], mix: int, window: int, batch: int) -> float:
    order = EpochOrder(counts, seed=0, epoch=0, shuffle=True, mix=mix, window=window)
    starts = np.concatenate([[0], np.cumsum(counts)])
    n = order.num_samples - order.num_samples % batch
    shard, index, _ = order.locate(np.arange(n))
    classes = labels[starts[shard] + index].reshape(-1, batch)
    return float(np.mean([len(np.unique(row)) for row in classes]))


def shards_per_worker(counts: list[int], mix: int, window: int, ranks: int, workers: int, batch: int) -> float:
    order = EpochOrder(counts, seed=0, epoch=0, shuffle=True, mix=mix, window=window)
    opened = []
    for r in range(ranks):
        for w in range(workers):
            plan = worker_plan(np.arange(order.num_samples), rank=r, world_size=ranks, worker=w, num_workers=workers,
                               batch_size=batch, remainder="drop")
            opened.append(len(np.unique(order.locate(plan.positions)[0])))
    return float(np.median(opened))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-shard", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--window", type=int, default=1000, help="shuffle_buffer (permuted window)")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--mix", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64])
    args = parser.parse_args()
    sorted_labels = np.repeat(np.arange(args.classes), -(-args.samples // args.classes))[: args.samples]
    shuffled_labels = np.random.default_rng(0).permutation(sorted_labels)
    counts = [min(args.per_shard, args.samples - i) for i in range(0, args.samples, args.per_shard)]
    iid = args.classes * (1 - (1 - 1 / args.classes) ** args.batch)
    rows = []
    for mix in args.mix:
        row = {"mix_shards": mix, "iid": round(iid, 3)}
        for name, labels in (("class_sorted", sorted_labels), ("shuffled", shuffled_labels)):
            value = distinct_per_batch(labels, counts, mix, args.window, args.batch)
            row[name] = round(value, 3)
            row[f"{name}_vs_iid"] = round(value / iid, 3)
        row["shards_per_worker"] = shards_per_worker(counts, mix, args.window, args.ranks, args.workers, args.batch)
        rows.append(row)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
