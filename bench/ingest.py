"""``sslkit data shard`` on an ImageNet-like folder vs the I/O bounds; class diversity of batches.

Part 1, speed and size: a generated folder of JPEGs at typical ImageNet sizes (500x375, 375x500,
500x333; ~110 KB, class sub-folders; generation is not timed, and the files sit in the page cache
as they would on a second pass). Timed alternately, medians of ``--repeats``; before each call
(untimed) its output folder is emptied and ``os.sync()`` writes back what the previous call left
dirty, so no side pays for another's writeback:

- ``tar``: ``tar -cf`` of the same files (no Python, no validation: the floor);
- ``TarWriter loop``: read each file, parse its header with PIL, write it with webdataset's
  ``TarWriter`` in one process (the issue's bound for a Python writer);
- ``sslkit shard 1 worker`` / ``N workers``: :func:`sslkit.data.ingest.ingest` as the CLI runs it
  (listing, shuffle, validation, shards, sha256, manifest), in process, with shards of
  ``--per-shard`` samples so that a small folder still gives each worker several tasks.

Part 2, class diversity: many small JPEGs in ``--classes`` class folders, sharded shuffled (the
default) and with ``--no-shuffle`` (class-sorted shards), then read for one epoch through
``ShardDataModule`` at its defaults (workers, shuffle buffer; only the batch size varies). Reports
the mean number of distinct classes per batch against the i.i.d. expectation (a batch drawn at
random from the whole set, without replacement).

    flock -x /tmp/sslkit-cpu.lock python bench/ingest.py
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import alternate, machine, median  # noqa: E402
from sslkit.data.datamodule import ShardDataModule  # noqa: E402
from sslkit.data.file_sources import folder_source  # noqa: E402
from sslkit.data.ingest import ingest  # noqa: E402

SIZES = [(500, 375), (375, 500), (500, 333)]  # W x H, the common ImageNet shapes


def natural_jpeg(rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    """A smooth random scene plus sensor-like noise: compresses like a photo (~110 KB at q90)."""
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    pixels = np.clip(base + rng.normal(0, 22, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_folder(root: Path, num_images: int, num_classes: int, *, size: tuple[int, int] | None, unique: int) -> int:
    """``root/nXXXXXXXX/*.JPEG``; ``unique`` distinct images reused round-robin; returns total bytes."""
    rng = np.random.default_rng(0)
    pool = [natural_jpeg(rng, size or SIZES[i % len(SIZES)]) for i in range(unique)]
    total = 0
    for i in range(num_images):
        folder = root / f"n{i % num_classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        data = pool[i % unique]
        (folder / f"img_{i:07d}.JPEG").write_bytes(data)
        total += len(data)
    return total


def tar_writer_loop(root: Path, out: Path) -> None:
    """The I/O bound for a Python writer: read, parse the header, TarWriter (no validation, one file)."""
    from webdataset import TarWriter

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    with TarWriter(str(out), encoder=False, mtime=0) as tar:
        for label, folder in enumerate(class_dirs):
            for path in sorted(folder.iterdir()):
                data = path.read_bytes()
                with Image.open(io.BytesIO(data)) as image:
                    image.size  # noqa: B018 - the header parse is the point
                tar.write({"__key__": path.stem, "jpg": data, "cls": str(label).encode()})


def speed(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    src = work / "imagenet_like"
    source_bytes = make_folder(src, args.num_images, 10, size=None, unique=min(200, args.num_images))
    out = work / "out"
    folders = {"tar": out / "tar", "TarWriter loop": out / "loop", "sslkit shard 1 worker": out / "w1",
               f"sslkit shard {args.workers} workers": out / "wn"}

    def fresh(name: str) -> None:
        """Untimed, before each call: an empty output folder and no dirty pages left by the previous side."""
        shutil.rmtree(folders[name], ignore_errors=True)
        folders[name].mkdir(parents=True)
        os.sync()

    sides = {
        "tar": lambda: subprocess.run(["tar", "-cf", str(out / "tar" / "all.tar"), "-C", str(src), "."], check=True),
        "TarWriter loop": lambda: tar_writer_loop(src, out / "loop" / "all.tar"),
        "sslkit shard 1 worker": lambda: ingest(
            folder_source(src), out / "w1", workers=1, max_samples_per_shard=args.per_shard, progress=False),
        f"sslkit shard {args.workers} workers": lambda: ingest(
            folder_source(src), out / "wn", workers=args.workers, max_samples_per_shard=args.per_shard,
            progress=False),
    }
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    times = alternate({name: _cpu_timed(fn, cpu[name]) for name, fn in sides.items()}, args.repeats, before=fresh)
    rates = {name: args.num_images / median(t) for name, t in times.items()}
    shard_bytes = sum(p.stat().st_size for p in (out / "w1").iterdir() if p.name.endswith((".tar", ".idx.json")))
    manifest = json.loads((out / "w1" / "manifest.json").read_text())
    return {
        "num_images": args.num_images, "mean_kb": source_bytes / args.num_images / 1e3,
        "img_per_s": rates, "seconds": {k: median(v) for k, v in times.items()},
        "img_per_cpu_s": {k: args.num_images / median(v[1:] or v) for k, v in cpu.items()},  # v[0]: warm-up
        "source_bytes": source_bytes, "shard_bytes": shard_bytes, "bytes_ratio": shard_bytes / source_bytes,
        "passthrough": manifest["num_passthrough"],
    }


def _cpu_timed(fn: Any, record: list[float]) -> Any:
    """``fn``, appending the CPU seconds (user + sys of this process and its children) of each call."""

    def run() -> None:
        before = _cpu_seconds()
        fn()
        record.append(_cpu_seconds() - before)

    return run


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _Labels:
    """Collate to the label tensor only (the measurement needs nothing else)."""

    def __call__(self, samples: list[dict[str, Any]]) -> Any:
        import torch

        return torch.tensor([s["label"] for s in samples])


class _Tiny:
    """A transform that asks for a tiny JPEG draft decode and returns nothing big."""

    decode_size = (8, 8)

    def __call__(self, image: Image.Image) -> list[Any]:
        return [0]


def iid_distinct(counts: list[int], batch: int) -> float:
    """E[distinct classes] in ``batch`` samples drawn without replacement: sum_c 1 - C(N-n_c, B)/C(N, B)."""
    total = sum(counts)

    def log_choose(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) if 0 <= k <= n else -math.inf

    return sum(1 - math.exp(log_choose(total - n, batch) - log_choose(total, batch)) for n in counts)


def diversity(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    src = work / "many_classes"
    make_folder(src, args.diversity_images, args.classes, size=(32, 24), unique=64)
    counts = [args.diversity_images // args.classes] * args.classes
    rows: dict[str, Any] = {}
    for name, shuffle in (("shuffled", True), ("no-shuffle", False)):
        out = work / f"div-{name}"
        shutil.rmtree(out, ignore_errors=True)
        ingest(folder_source(src), out, shuffle=shuffle, workers=args.workers, progress=False)
        for batch in args.batch:
            module = ShardDataModule(str(out), batch_size_per_device=batch, train_transform=_Tiny(),
                                     collate_fn=_Labels())
            distinct = [len(set(b.tolist())) for b in module.train_dataloader()]
            rows[f"{name} batch {batch}"] = float(np.mean(distinct))
    iid = {f"batch {b}": iid_distinct(counts, b) for b in args.batch}
    return {"num_images": args.diversity_images, "num_classes": args.classes, "mean_distinct": rows, "iid": iid}


def report(result: dict[str, Any]) -> None:
    print(f"\n{machine()}; load average {os.getloadavg()[0]:.1f} at the end")
    if result["speed"] is not None:
        report_speed(result["speed"])
    d = result["diversity"]
    print(f"\n{d['num_images']} images, {d['num_classes']} classes, ShardDataModule defaults")
    print("| shards | batch | distinct classes / batch | i.i.d. | ratio |\n|---|---:|---:|---:|---:|")
    for key, value in d["mean_distinct"].items():
        name, batch = key.split(" batch ")
        iid = d["iid"][f"batch {batch}"]
        print(f"| {name} | {batch} | {value:.2f} | {iid:.2f} | {value / iid:.3f} |")


def report_speed(s: dict[str, Any]) -> None:
    """The speed table (img/s) and the size ratio."""
    print(f"{s['num_images']} JPEGs, mean {s['mean_kb']:.0f} KB")
    loop = s["img_per_s"]["TarWriter loop"]
    print("| writer | img/s | vs TarWriter loop | vs tar | img per CPU-second |\n|---|---:|---:|---:|---:|")
    for name, rate in s["img_per_s"].items():
        print(f"| {name} | {rate:,.0f} | {rate / loop:.2f}x | {rate / s['img_per_s']['tar']:.3f}x"
              f" | {s['img_per_cpu_s'][name]:,.0f} |")
    one = s["img_per_s"]["sslkit shard 1 worker"]
    many = [v for k, v in s["img_per_s"].items() if k.endswith("workers")][0]
    print(f"workers speed-up {many / one:.2f}x; shard bytes / source bytes {s['bytes_ratio']:.3f};"
          f" passthrough {s['passthrough']} of {s['num_images']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-shard", type=int, default=250, help="part 1: samples per shard (tasks to share)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--diversity-images", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--work", default="/tmp/sslkit-bench-ingest")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    start = time.perf_counter()
    result = {"speed": speed(work, args) if not args.skip_speed else None, "diversity": diversity(work, args)}
    result["seconds"] = time.perf_counter() - start
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
