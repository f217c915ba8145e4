"""SimCLR on CIFAR-10 for a fixed small CPU budget: kNN top-1 of the pretrained ViT next to random init.

    python bench/simclr_cifar10.py [--steps 150] [--shards shards/cifar10]

Shards are written from ``../shared/data/cifar10`` when missing (timed: MB and seconds are reported).
The kNN bank is the first ``--bank-shards`` train shards, the queries the first ``--query-shards``
test shards (1,000 images a shard), to keep feature extraction inside the budget on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import lightning as L
import torch

from sslkit.data import ShardDataModule, open_source, read_manifest, write_shards
from sslkit.objectives import SimCLR
from sslkit.quickstart import knn_top1
from sslkit.transforms import EvalTransform, SimCLRViews

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
BACKBONE_KWARGS = {"img_size": 32, "patch_size": 4, "depth": 4}


def ensure_shards(out: Path, root: Path) -> dict[str, dict]:
    """Shard CIFAR-10 train/test when missing; returns per split: dir, MB, seconds (None if reused)."""
    report = {}
    for split in ("train", "test"):
        path = out / split
        seconds = None
        if not (path / "manifest.json").exists():
            start = time.perf_counter()
            write_shards(open_source("cifar10", root=root, split=split), path, prefix=f"cifar10-{split}")
            seconds = time.perf_counter() - start
        manifest = read_manifest(path / "manifest.json")
        mb = sum(s["num_bytes"] for s in manifest["shards"]) / 1e6
        report[split] = {"dir": str(path), "num_samples": manifest["num_samples"], "MB": round(mb, 1),
                         "seconds": None if seconds is None else round(seconds, 1)}
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", type=Path, default=ROOT / "shards" / "cifar10")
    p.add_argument("--cifar-root", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--bank-shards", type=int, default=10)
    p.add_argument("--query-shards", type=int, default=2)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_simclr_cifar10")
    args = p.parse_args()

    sharding = ensure_shards(args.shards, args.cifar_root)
    tars = {split: sorted((args.shards / split).glob("*.tar")) for split in ("train", "test")}
    eval_shards = {"train": [str(t) for t in tars["train"][: args.bank_shards]],
                   "test": [str(t) for t in tars["test"][: args.query_shards]]}
    transform = EvalTransform(32, mean=MEAN, std=STD)

    L.seed_everything(0, verbose=False)
    model = SimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs=BACKBONE_KWARGS, proj_hidden_dim=512,
                   proj_output_dim=128, temperature=0.2, lr=1e-3, weight_decay=0.05, warmup_epochs=0.05)
    random_init = knn_top1(copy.deepcopy(model.backbone), eval_shards, transform, args.num_workers)
    views = SimCLRViews(input_size=32, min_scale=0.2, cj_strength=0.5, blur_prob=0.0, mean=MEAN, std=STD)
    dm = ShardDataModule(str(args.shards / "train"), batch_size_per_device=args.batch_size,
                         num_workers=args.num_workers, train_transform=views, pin_memory=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, default_root_dir=args.out)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    train_s = time.perf_counter() - start
    trainer.save_checkpoint(args.out / "last.ckpt")  # for eval/cifar10.sh (kNN sweep + probe grid report)
    pretrained = knn_top1(model.backbone, eval_shards, transform, args.num_workers)

    result = {
        "sharding": sharding,
        "budget": {"steps": args.steps, "batch_size": args.batch_size, "images": args.steps * args.batch_size,
                   "train_seconds": round(train_s, 1), "img_per_s": round(args.steps * args.batch_size / train_s, 1)},
        "backbone": {"name": "vit_tiny_patch16_224", **BACKBONE_KWARGS},
        "knn_bank": len(eval_shards["train"]) * 1000, "knn_queries": len(eval_shards["test"]) * 1000,
        "random_init": random_init, "pretrained": pretrained, "threads": torch.get_num_threads(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    for key in pretrained:
        print(f"{key}: random init {random_init[key]:.1f}%  pretrained {pretrained[key]:.1f}%  "
              f"(+{pretrained[key] - random_init[key]:.1f})")


if __name__ == "__main__":
    main()
