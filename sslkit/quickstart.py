"""``sslkit quickstart``: the embedded default run, end to end on a 2-core CPU in a few minutes.

Writes scikit-learn's bundled handwritten digits (upsampled to 32 px) to WebDataset shards,
pretrains SimCLR on a small ViT through the same DataModule/objective/Trainer a recipe uses, and
compares weighted-kNN top-1 on the held-out split for raw pixels, the random-init backbone and the
pretrained one. Results go to ``<out>/quickstart.json`` (+ ``.md``).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from sslkit.callbacks.run_record import LogLastStep, RunRecorder
from sslkit.data import ShardDataModule, build_eval_loader, open_source, write_shards
from sslkit.distributed.precision import resolve_precision
from sslkit.evaluation.features import extract_features
from sslkit.evaluation.knn import knn_classify, knn_key
from sslkit.evaluation.results import checkpoint_record
from sslkit.objectives import SimCLR
from sslkit.run_logs import ResumableCSVLogger
from sslkit.run_record import Budget, Preprocessing, RunRecord, dataset_from_manifest
from sslkit.transforms import EvalTransform, SimCLRViews

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
# A ViT-Tiny-width encoder, shallow enough to pretrain in ~3 minutes on 2 cores: 8-px patches
# give 16 tokens per 32-px digit (each patch covers 2x2 of the original 8x8 pixels).
BACKBONE = "vit_tiny_patch16_224"
BACKBONE_KWARGS = {"img_size": 32, "patch_size": 8, "depth": 4}


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
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--num-workers", type=int, default=1)
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


def digit_views() -> SimCLRViews:
    """SimCLR views for grayscale digits: crops, small rotations and contrast, no flips or hue."""
    return SimCLRViews(input_size=32, min_scale=0.3, cj_prob=0.8, cj_strength=0.5, gray_prob=0.0,
                       blur_prob=0.0, hflip_prob=0.0, rotation_degrees=10, mean=MEAN, std=STD)


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
    transform = transform or EvalTransform(32, mean=MEAN, std=STD)
    model = backbone if backbone is not None else nn.Flatten()
    feats = {}
    for split, path in shards.items():
        loader = build_eval_loader(path, transform, batch_size=256, num_workers=num_workers)
        feats[split] = extract_features(model, loader)
    result = knn_classify(feats["train"].feats, feats["train"].labels, feats["test"].feats, feats["test"].labels,
                          ks=(20, 200), temps=(0.07, 0.1))
    return {key: result[key] for key in (knn_key(20, 0.07, "top1"), knn_key(200, 0.1, "top1"))}


def build_model(args: argparse.Namespace) -> SimCLR:
    return SimCLR(backbone=BACKBONE, backbone_kwargs=BACKBONE_KWARGS, proj_hidden_dim=512, proj_output_dim=128,
                  temperature=0.2, lr=args.lr, weight_decay=0.05, warmup_epochs=1.0)


def _record(args: argparse.Namespace, shards: dict[str, Path]) -> RunRecord:
    """The run record a recipe run writes: what ``sslkit publish runs/quickstart`` puts in the card."""
    return RunRecord(
        objective="sslkit.objectives.SimCLR", recipes=["sslkit quickstart"], run_dir=str(args.out),
        train=dataset_from_manifest(str(shards["train"])), val=dataset_from_manifest(str(shards["test"])),
        budget=Budget(batch_size_per_device=args.batch_size),
        preprocessing=Preprocessing(32, 32, MEAN, STD),
    )


def pretrain(model: SimCLR, args: argparse.Namespace, shards: dict[str, Path]) -> SimCLR:
    dm = ShardDataModule(shards["train"], batch_size_per_device=args.batch_size, num_workers=args.num_workers,
                         train_transform=digit_views(), shuffle_buffer=512, seed=args.seed, pin_memory=False)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=args.epochs, default_root_dir=args.out,
        precision=resolve_precision("auto", "cpu")[0],  # as recipes' `precision: auto`
        logger=ResumableCSVLogger(args.out, name="", version=""), log_every_n_steps=5, enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=args.out / "checkpoints", save_last=True, save_top_k=0),
                   RunRecorder(_record(args, shards), args.out), LogLastStep()],
    )
    trainer.fit(model, datamodule=dm)
    return model


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv or [])
    start = time.perf_counter()
    L.seed_everything(args.seed, verbose=False)
    shards = write_digit_shards(args.out)
    rows: dict[str, dict[str, float]] = {"raw_pixels": knn_top1(None, shards)}
    model = build_model(args)
    rows["random_init"] = knn_top1(copy.deepcopy(model.backbone), shards)  # the very init that is trained
    rows["pretrained"] = knn_top1(pretrain(model, args, shards).backbone, shards)
    seconds = time.perf_counter() - start
    table = _table(rows)
    print(f"\nkNN top-1 on held-out digits ({seconds:.0f} s total)\n" + "\n".join(table) + "\n\n" + "\n".join(EXPLAIN))
    ckpt = args.out / "checkpoints" / "last.ckpt"
    result = {
        "protocol": "knn", "objective": "SimCLR", "dataset": "sklearn digits (32 px), stratified 80/20 split",
        "backbone": BACKBONE, "backbone_kwargs": BACKBONE_KWARGS, "epochs": args.epochs,
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
