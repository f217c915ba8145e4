"""``sslkit data ...``: write shards (``shard``), check them (``verify``), look at them (``inspect``), index a
set written by another tool (``index``).

    sslkit data shard --source imagenet --root /data/imagenet --split train --out shards/in1k/train
    sslkit data verify shards/in1k/train
    sslkit data index shards/from-webdataset/train
    sslkit data inspect shards/in1k/train
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from sslkit.data.encoding import IMAGE_FORMATS, VERIFY_MODES
from sslkit.data.sources import SOURCES, open_source
from sslkit.hardware import usable_cores


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslkit data", description="Dataset preparation.")
    commands = parser.add_subparsers(dest="command", required=True)
    _shard_parser(commands.add_parser("shard", help="write WebDataset shards and manifest.json from a source"))
    verify = commands.add_parser("verify", help="check every shard's sha256 and sample count; exit 1 on a mismatch")
    verify.add_argument("dir", help="folder with manifest.json")
    verify.add_argument("--workers", type=int, default=2, help="shards read at once")
    verify.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    index = commands.add_parser("index", help="write the sample index beside every shard that has none "
                                "(a set from another tool or an older sslkit); exit 1 if a shard does not match the manifest")
    index.add_argument("dir", help="folder with manifest.json")
    index.add_argument("--force", action="store_true", help="rewrite existing indexes too")
    index.add_argument("--workers", type=int, default=2, help="shards read at once")
    index.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    inspect = commands.add_parser("inspect", help="counts, class histogram, grid of random samples")
    inspect.add_argument("dir", help="folder with manifest.json")
    inspect.add_argument("--out", help="folder for inspect.json and inspect.png (default: DIR)")
    inspect.add_argument("--grid", type=int, default=64, help="random samples in the grid")
    inspect.add_argument("--seed", type=int, default=0, help="which random samples")
    return parser


def _shard_parser(shard: argparse.ArgumentParser) -> None:
    add = shard.add_argument
    add("--source", required=True, choices=SOURCES)
    add("--root", help="dataset folder (imagenet: the folder with train/ and val/), list file (filelist) "
        "or Parquet/Arrow folder or file; not needed for digits")
    add("--split", default="train", help="train, val or test (folder: ROOT/SPLIT if it exists)")
    add("--out", required=True, help="output folder for the shards and manifest.json")
    add("--prefix", help="shard name prefix (default: the split)")
    add("--labels", help="imagenet val: label file (default: LOC_val_solution.csv or val_labels.txt found near ROOT)")
    add("--image-column", help="parquet: image column (default: the first struct<bytes, path> or binary column)")
    add("--label-column", help="parquet: label column (default: label, if present)")
    add("--format", default="png", choices=IMAGE_FORMATS, dest="image_format",
        help="encoding of images that must be (re-)encoded: decoded sources (cifar10, mnist, digits) and "
        "converted non-JPEG files; files already JPEG/PNG/WebP keep their bytes")
    add("--quality", type=int, default=95, help="JPEG quality when re-encoding")
    add("--max-size", type=int, help="resize (and re-encode) images whose longer side exceeds this")
    add("--verify", default="fast", choices=VERIFY_MODES,
        help="fast: header and end-of-file check (decode only when that fails); full: decode every image")
    add("--reencode", action="store_true", help="re-encode every image instead of passing bytes through")
    add("--max-samples-per-shard", type=int, default=1000)
    add("--max-shard-mb", type=float, default=None, help="size limit per shard in MB (1e6 bytes)")
    add("--no-shuffle", action="store_true", help="keep the source order (default: a seeded shuffle)")
    add("--seed", type=int, default=0, help="seed of the write-order shuffle")
    add("--shuffle-window", type=int, help="shuffle within this many samples (default: whole list; streamed "
        "sources: 100,000 paths, 10,000 Parquet rows)")
    add("--workers", type=int, default=usable_cores(), help="writer processes (default: the usable cores)")
    add("--num-nodes", type=int, help="nodes sharing the job (default: SLURM_ARRAY_TASK_COUNT or 1)")
    add("--node-rank", type=int, help="this node (default: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN or 0)")
    add("--size", type=int, default=32, help="digits: output side length in pixels")
    add("--no-progress", action="store_true", help="hide the progress bar")


def main(argv: list[str] | None = None) -> int:
    """Run ``sslkit data`` with ``argv`` (the arguments after ``data``); returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return {"shard": shard, "verify": verify, "index": index, "inspect": inspect}[args.command](args)


def shard(args: argparse.Namespace) -> int:
    from sslkit.data.ingest import ingest

    num_nodes, node_rank = _nodes(args.num_nodes, args.node_rank)
    source = open_source(
        args.source, root=args.root, split=args.split, size=args.size, labels=args.labels,
        image_column=args.image_column, label_column=args.label_column,
    )
    report = ingest(
        source, args.out, prefix=args.prefix, image_format=args.image_format, quality=args.quality,
        max_size=args.max_size, verify=args.verify, passthrough=not args.reencode,
        max_samples_per_shard=args.max_samples_per_shard,
        max_shard_bytes=int(args.max_shard_mb * 1e6) if args.max_shard_mb else None,
        shuffle=not args.no_shuffle, seed=args.seed, shuffle_window=args.shuffle_window,
        workers=args.workers, num_nodes=num_nodes, node_rank=node_rank, progress=not args.no_progress,
    )
    print(f"{source.name}: {report.summary(args.out)}")
    return 0


def verify(args: argparse.Namespace) -> int:
    from sslkit.data.verify import extra_tars, load_manifest, verify_shards

    problems = verify_shards(args.dir, workers=args.workers, progress=not args.no_progress)
    _, manifest = load_manifest(args.dir)
    for line in problems:
        print(f"{args.dir}: {line}", file=sys.stderr)
    extra = extra_tars(args.dir)
    if extra:
        print(f"{args.dir}: {len(extra)} tar files not in the manifest (ignored by readers): {', '.join(extra[:5])}")
    shards = len(manifest["shards"])
    if problems:
        print(f"{args.dir}: {len(problems)} of {shards} shards FAILED verification", file=sys.stderr)
        return 1
    print(f"{args.dir}: {shards} shards, {manifest['num_samples']} samples verified (sha256, sizes, counts)")
    return 0


def index(args: argparse.Namespace) -> int:
    from sslkit.data.indexing import index_shards

    report = index_shards(args.dir, force=args.force, workers=args.workers, progress=not args.no_progress)
    for line in report.problems:
        print(f"{args.dir}: {line}", file=sys.stderr)
    print(f"{args.dir}: {len(report.written)} shards indexed, {len(report.kept)} already had an index"
          + (f", {len(report.problems)} FAILED" if report.problems else ""))
    return 1 if report.problems else 0


def inspect(args: argparse.Namespace) -> int:
    from sslkit.data.inspection import inspect_shards

    summary = inspect_shards(args.dir, args.out, grid=args.grid, seed=args.seed)
    counts = list(summary["class_counts"].values())
    print(json.dumps({k: v for k, v in summary.items() if k != "class_counts"}))
    if counts:
        print(f"{len(counts)} classes: {min(counts)} to {max(counts)} samples per class"
              f" (mean {sum(counts) / len(counts):.1f}); histogram in {summary['grid'][:-4]}.json")
    return 0


def _nodes(num_nodes: int | None, node_rank: int | None) -> tuple[int, int]:
    """``--num-nodes/--node-rank``, else a SLURM job array's task count and index, else (1, 0)."""
    env = os.environ
    if num_nodes is None:
        num_nodes = int(env.get("SLURM_ARRAY_TASK_COUNT", 1))
    if node_rank is None:
        node_rank = int(env.get("SLURM_ARRAY_TASK_ID", 0)) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
    return num_nodes, node_rank


if __name__ == "__main__":
    sys.exit(main())
