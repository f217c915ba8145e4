"""``sslkit quickstart``: the embedded default run, end to end on a 2-core CPU in a few minutes.

Writes scikit-learn's bundled handwritten digits (upsampled to 32 px) to WebDataset shards,
pretrains the recipe ``simclr/vit_tiny_digits`` (SimCLR on a small ViT) through the same LightningCLI
machinery as ``sslkit pretrain``, and compares weighted-kNN top-1 on the held-out split for raw
pixels, the random-init backbone and the pretrained one. Results go to ``<out>/quickstart.json`` (+ ``.md``).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from sslkit.config import load_recipe
from sslkit.data import build_eval_loader, open_source, write_shards
from sslkit.evaluation.features import extract_features
from sslkit.evaluation.knn import knn_classify, knn_key
from sslkit.evaluation.results import checkpoint_record
from sslkit.presets import STATS
from sslkit.recipes import resolve_recipe
from sslkit.training import SSLCLI, build_cli
from sslkit.transforms import EvalTransform

RECIPE = "simclr/vit_tiny_digits"  # what the run is: objective, backbone, views, schedule (recipes/)


# What each row means, one sentence each (printed under the table and written into quickstart.md).
EXPLAIN = (
    "raw_pixels: kNN on the 32x32 pixels themselves; digits are so clean that pixels are a strong baseline, "
    "which a few CPU minutes of pretraining do not reach (on natural images, CIFAR-10, pixels score ~40%).",
    "random_init: the same ViT before any training, what the architecture alone gives: the floor to beat.",
    "pretrained: the ViT after SimCLR; its gain over random_init is what self-supervision learned without labels.",
)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sslkit quickstart", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="shards, checkpoints, results")
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's trainer.max_epochs")
    p.add_argument("--batch-size", type=int, default=None, help="default: the recipe's batch_size_per_device")
    p.add_argument("--lr", type=float, default=None, help="default: the recipe's lr")
    p.add_argument("--num-workers", type=int, default=None, help="default: the recipe's num_workers")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def write_digit_shards(out: Path) -> dict[str, Path]:
    """Train/test shards of the 1,797 digits (stratified 80/20 split), written once."""
    dirs = {}
    for split in ("train", "test"):
        dirs[split] = out / "shards" / split
        if not (dirs[split] / "manifest.json").exists():
            write_shards(open_source("digits", split=split, size=32), dirs[split], prefix=f"digits-{split}",
                         max_samples_per_shard=256)
    return dirs


def knn_top1(
    backbone: nn.Module | None, shards: dict[str, Any], transform: Callable | None = None, num_workers: int = 0
) -> dict[str, float]:
    """Weighted kNN top-1 (k=20, T=0.07 and k=200, T=0.1) of ``backbone`` features; raw pixels if None.

    Args:
        backbone: timm-contract model, or None for flattened normalised pixels.
        shards: ``{"train": bank shards, "test": query shards}`` (any spec ``build_eval_loader`` takes).
        transform: eval preprocessing; default: the digits' normalisation at 32 px.
        num_workers: decoding workers.
    """
    transform = transform or EvalTransform(32, *STATS["digits"])
    model = backbone if backbone is not None else nn.Flatten()
    feats = {}
    for split, path in shards.items():
        loader = build_eval_loader(path, transform, batch_size=256, num_workers=num_workers)
        feats[split] = extract_features(model, loader)
    result = knn_classify(feats["train"].feats, feats["train"].labels, feats["test"].feats, feats["test"].labels,
                          ks=(20, 200), temps=(0.07, 0.1))
    return {key: result[key] for key in (knn_key(20, 0.07, "top1"), knn_key(200, 0.1, "top1"))}


def build_run(args: argparse.Namespace, shards: dict[str, Path]) -> SSLCLI:
    """Model, data and trainer of :data:`RECIPE`, the quickstart's flags as dotted overrides."""
    flags = {"trainer.max_epochs": args.epochs, "data.init_args.batch_size_per_device": args.batch_size,
             "model.init_args.lr": args.lr, "data.init_args.num_workers": args.num_workers}
    overrides = [f"--seed_everything={args.seed}", f"--data.init_args.seed={args.seed}",
                 f"--data.init_args.train_shards={shards['train']}", f"--data.init_args.val_shards={shards['test']}",
                 *(f"--{key}={value}" for key, value in flags.items() if value is not None)]
    path = resolve_recipe(RECIPE)
    return build_cli(overrides, args.out, recipe=load_recipe(path), recipe_files=[path], recipe_names=[RECIPE])


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv or [])
    start = time.perf_counter()
    shards = write_digit_shards(args.out)
    cli = build_run(args, shards)  # seeds, then builds the model: the very init that is trained
    model, transform = cli.model, cli.datamodule.eval_transform
    rows: dict[str, dict[str, float]] = {"raw_pixels": knn_top1(None, shards, transform)}
    rows["random_init"] = knn_top1(copy.deepcopy(model.backbone), shards, transform)
    cli.trainer.fit(model, datamodule=cli.datamodule)
    rows["pretrained"] = knn_top1(model.backbone, shards, transform)
    seconds = time.perf_counter() - start
    table = _table(rows)
    print(f"\nkNN top-1 on held-out digits ({seconds:.0f} s total)\n" + "\n".join(table) + "\n\n" + "\n".join(EXPLAIN))
    ckpt, init = args.out / "checkpoints" / "last.ckpt", cli.config.model.init_args
    result = {
        "protocol": "knn", "objective": "SimCLR", "dataset": "sklearn digits (32 px), stratified 80/20 split",
        "recipe": RECIPE, "backbone": init.backbone, "backbone_kwargs": dict(init.backbone_kwargs or {}),
        "epochs": cli.trainer.max_epochs,
        "seconds": round(seconds, 1), "checkpoint": checkpoint_record(ckpt), "numbers": rows,
    }
    (args.out / "quickstart.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "quickstart.md").write_text("# sslkit quickstart: kNN top-1 (%)\n\n" + "\n".join(table) + "\n\n"
                                            + "".join(f"- {line}\n" for line in EXPLAIN))
    _plot(rows, args.out / "quickstart.png")
    print(f"results: {args.out / 'quickstart.json'}, {args.out / 'quickstart.png'}")
    return 0


def _plot(rows: dict[str, dict[str, float]], path: Path) -> None:
    """Bar chart of kNN top-1 per feature source, one bar group per (k, T)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(next(iter(rows.values())))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        values = [row[key] for row in rows.values()]
        bars = ax.bar([j + i * width for j in range(len(rows))], values, width, label=key)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(rows))], list(rows))
    ax.set_ylabel("kNN top-1 (%)")
    ax.set_ylim(0, 105)
    ax.set_title("sslkit quickstart: held-out digits")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(rows: dict[str, dict[str, float]]) -> list[str]:
    """Markdown table: one row per feature source, one column per (k, T)."""
    keys = list(next(iter(rows.values())))
    lines = ["| features | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    return lines + [f"| {name} | " + " | ".join(f"{row[k]:.1f}" for k in keys) + " |" for name, row in rows.items()]
