"""``sslkit publish``: a trained backbone as a folder that plain timm loads, with its model card.

    sslkit publish RUN_DIR | CHECKPOINT | DEEPSPEED_DIR --out DIR [--which student|teacher]
                   [--train-shards S --val-shards S] [--license ID] [--push REPO_ID [--private]]

Writes ``DIR/{model.safetensors, config.json, README.md, training_config.yaml, eval/, SHA256SUMS}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sslkit.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sslkit publish", description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, help="run directory, Lightning checkpoint, or DeepSpeed checkpoint folder")
    p.add_argument("--out", type=Path, required=True, help="folder to write (must be empty unless --overwrite)")
    p.add_argument("--which", choices=("student", "teacher"),
                   help="backbone to publish (default: the objective's eval_backbone(): EMA teacher if any)")
    p.add_argument("--license", default="apache-2.0", help="license of the weights (model card and config)")
    p.add_argument("--name", help="model name in the card (default: the --out folder name)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out (only once complete)")
    pre = p.add_argument_group("preprocessing (default: the run's eval results, then its config)")
    pre.add_argument("--input-size", type=int)
    pre.add_argument("--resize", type=int, help="shorter side before the centre crop")
    pre.add_argument("--mean", type=float, nargs=3)
    pre.add_argument("--std", type=float, nargs=3)
    knn = p.add_argument_group("kNN on the published weights (when the run holds no eval result)")
    knn.add_argument("--train-shards", help="kNN bank: shard dir, manifest or brace pattern")
    knn.add_argument("--val-shards", help="kNN queries")
    knn.add_argument("--batch-size", type=int, default=256)
    knn.add_argument("--num-workers", type=int, default=0)
    hub = p.add_argument_group("Hugging Face Hub")
    hub.add_argument("--push", metavar="REPO_ID", help="upload the folder to this Hub repository")
    hub.add_argument("--private", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sslkit publish``; returns the process exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from sslkit.publish.checksums import ChecksumError  # after parsing: --help stays fast
    from sslkit.publish.folder import PublishOptions, publish
    from sslkit.publish.hub import HubUnreachable, PushError, push_folder
    from sslkit.publish.source import PublishError

    options = PublishOptions(
        which=args.which, license=args.license, name=args.name, repo_id=args.push, input_size=args.input_size,
        resize=args.resize, mean=args.mean, std=args.std, train_shards=args.train_shards,
        val_shards=args.val_shards, batch_size=args.batch_size, num_workers=args.num_workers,
        overwrite=args.overwrite,
    )
    try:
        out = publish(args.source, args.out, options)
    except (PublishError, ChecksumError) as err:
        raise UserError(str(err)) from err
    print(f"published {args.source} to {out}")
    if args.push:
        try:
            url = push_folder(out, args.push, private=args.private)
        except (HubUnreachable, PushError) as err:
            raise UserError(str(err)) from err
        print(f"uploaded to {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
