"""Class mixing of the epoch plan: mean distinct classes per batch against the i.i.d. expectation.

Plan arithmetic (no images): a dataset of ``--classes`` classes written class after class
(``--no-shuffle`` shards) or in random order (shuffled on write), cut into shards of ``--per-shard``;
for each ``mix_shards`` the batches of one epoch of :class:`sslkit.data.plan.EpochOrder` are scored,
for indexed shards (read by offset, a group's samples permuted together) and streamed ones (tar
order kept), with the shards a worker of ``R x W`` opens.

``--read-rate`` also writes ``--rate-samples`` samples of ``--rate-kb`` kB into real shards and
times reading them raw (no decoding; digests checked) in the indexed plan's order against streaming
the same shards front to back: what random access costs on this disk.

    python bench/mixing.py --samples 10000 --classes 10 --per-shard 100 --batch 64
    python bench/mixing.py --samples 6000 --classes 100 --per-shard 1000 --batch 64 256 --mix 64 256 --read-rate
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from sslkit.data.plan import EpochOrder, worker_plan


def distinct_per_batch(labels: np.ndarray, counts: list[int], mix: int, window: int, batch: int,
                       random_access: bool) -> float:
    order = EpochOrder(counts, seed=0, epoch=0, shuffle=True, mix=mix, window=window, random_access=random_access)
    starts = np.concatenate([[0], np.cumsum(counts)])
    n = order.num_samples - order.num_samples % batch
    shard, index, _ = order.locate(np.arange(n))
    classes = labels[starts[shard] + index].reshape(-1, batch)
    return float(np.mean([len(np.unique(row)) for row in classes]))


def shards_per_worker(counts: list[int], mix: int, window: int, ranks: int, workers: int, batch: int,
                      random_access: bool) -> float:
    order = EpochOrder(counts, seed=0, epoch=0, shuffle=True, mix=mix, window=window, random_access=random_access)
    opened = []
    for r in range(ranks):
        for w in range(workers):
            plan = worker_plan(np.arange(order.num_samples), rank=r, world_size=ranks, worker=w, num_workers=workers,
                               batch_size=batch, remainder="drop")
            opened.append(len(np.unique(order.locate(plan.positions)[0])))
    return float(np.median(opened))


def read_rate(samples: int, kb: int, per_shard: int, repeats: int = 3) -> dict[str, float]:
    """Raw samples/s reading real shards by offset in the plan's order vs streaming them in tar order."""
    import os
    import tempfile
    import time

    from sslkit.data.manifest import resolve_shards
    from sslkit.data.sample_index import INDEX_SUFFIX
    from sslkit.data.shard_reader import IndexedShardReader, ShardReader
    from sslkit.data.writer import ShardWriter

    with tempfile.TemporaryDirectory() as tmp:
        with ShardWriter(tmp, prefix="r", max_samples_per_shard=per_shard) as writer:
            for i in range(samples):
                writer.write_encoded(f"s{i:06d}", "jpg", os.urandom(kb * 1000), i % 10, (1, 1))
            writer.close()
        shards = resolve_shards(tmp).shards
        order = EpochOrder([s.num_samples for s in shards], seed=0, epoch=0, shuffle=True, mix=256, random_access=True)
        shard, index, _ = order.locate(np.arange(order.num_samples))
        rates: dict[str, list[float]] = {"indexed_random": [], "streamed_sequential": []}
        for _ in range(repeats):
            start = time.perf_counter()
            readers = [IndexedShardReader(s.url, s.num_samples, s.sha256, s.url + INDEX_SUFFIX) for s in shards]
            assert all(readers[s].get(i) is not None for s, i in zip(shard.tolist(), index.tolist()))
            rates["indexed_random"].append(samples / (time.perf_counter() - start))
            start = time.perf_counter()
            for s in shards:
                reader = ShardReader(s.url, s.num_samples, s.sha256)
                assert all(reader.get(i) is not None for i in range(s.num_samples)) and reader.error is None
            rates["streamed_sequential"].append(samples / (time.perf_counter() - start))
    out = {name: round(float(np.median(v)), 1) for name, v in rates.items()}
    out["indexed_vs_streamed"] = round(out["indexed_random"] / out["streamed_sequential"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-shard", type=int, default=100)
    parser.add_argument("--batch", type=int, nargs="+", default=[64])
    parser.add_argument("--window", type=int, default=1000, help="shuffle_buffer (permuted window)")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--mix", type=int, nargs="+", default=[1, 8, 16, 32, 64, 256])
    parser.add_argument("--read-rate", action="store_true", help="also time indexed vs streamed reading")
    parser.add_argument("--rate-samples", type=int, default=2000)
    parser.add_argument("--rate-kb", type=int, default=110, help="bytes per sample (ImageNet JPEGs: ~110 kB)")
    args = parser.parse_args()
    sorted_labels = np.repeat(np.arange(args.classes), -(-args.samples // args.classes))[: args.samples]
    shuffled_labels = np.random.default_rng(0).permutation(sorted_labels)
    counts = [min(args.per_shard, args.samples - i) for i in range(0, args.samples, args.per_shard)]
    for batch in args.batch:
        iid = args.classes * (1 - (1 - 1 / args.classes) ** batch)
        for mix in args.mix:
            for read in ("indexed", "streamed"):
                random_access = read == "indexed"
                row = {"batch": batch, "mix_shards": mix, "read": read, "iid": round(iid, 3)}
                for name, labels in (("class_sorted", sorted_labels), ("shuffled", shuffled_labels)):
                    value = distinct_per_batch(labels, counts, mix, args.window, batch, random_access)
                    row[name] = round(value, 3)
                    row[f"{name}_vs_iid"] = round(value / iid, 3)
                row["shards_per_worker"] = shards_per_worker(counts, mix, args.window, args.ranks, args.workers,
                                                             batch, random_access)
                print(json.dumps(row))
    if args.read_rate:
        print(json.dumps({"read_rate_samples_per_s": read_rate(args.rate_samples, args.rate_kb, args.per_shard),
                          "samples": args.rate_samples, "kb": args.rate_kb, "per_shard": args.per_shard}))


if __name__ == "__main__":
    main()
