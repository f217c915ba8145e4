"""``sslkit data ...``: write shards from a source (``sslkit data shard --source cifar10 ...``)."""

from __future__ import annotations

import argparse
import sys
import time

from sslkit.data.sources import SOURCES, open_source
from sslkit.data.writer import IMAGE_FORMATS, write_shards


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslkit data", description="Dataset preparation.")
    commands = parser.add_subparsers(dest="command", required=True)
    shard = commands.add_parser("shard", help="write WebDataset shards and manifest.json from a source")
    shard.add_argument("--source", required=True, choices=SOURCES)
    shard.add_argument("--root", help="dataset folder (not needed for digits)")
    shard.add_argument("--split", default="train", help="train or test (folder: ROOT/SPLIT if it exists)")
    shard.add_argument("--out", required=True, help="output folder for the shards and manifest.json")
    shard.add_argument("--prefix", help="shard name prefix (default: the split)")
    shard.add_argument("--format", default="png", choices=IMAGE_FORMATS, dest="image_format")
    shard.add_argument("--quality", type=int, default=95, help="JPEG quality")
    shard.add_argument("--max-samples-per-shard", type=int, default=1000)
    shard.add_argument("--max-shard-mb", type=float, default=None, help="size limit per shard in MB (1e6 bytes)")
    shard.add_argument("--size", type=int, default=32, help="digits: output side length in pixels")
    shard.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``sslkit data`` with ``argv`` (the arguments after ``data``); returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    source = open_source(args.source, root=args.root, split=args.split, size=args.size)
    manifest = write_shards(
        source,
        args.out,
        prefix=args.prefix,
        image_format=args.image_format,
        quality=args.quality,
        max_samples_per_shard=args.max_samples_per_shard,
        max_shard_bytes=int(args.max_shard_mb * 1e6) if args.max_shard_mb else None,
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - start
    megabytes = sum(s["num_bytes"] for s in manifest["shards"]) / 1e6
    print(
        f"{manifest['source']}: {manifest['num_samples']} samples in {len(manifest['shards'])} shards,"
        f" {megabytes:.1f} MB, {seconds:.1f} s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
