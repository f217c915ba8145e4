"""I-JEPA collapse diagnostic: kNN and RankMe of the student and the EMA teacher every N steps.

Trains ``bench/objectives.py``'s I-JEPA (same ViT, data, views and masks) with a chosen predictor,
learning rate and EMA, and at every ``--every`` steps reports, for both encoders, weighted-kNN top-1
(a 2,000-image bank, 1,000 queries) and RankMe. It also reports the loss on one fixed batch three ways:
with the real context, with the context tokens zeroed (positions only), and with another image's
context. The figures behind docs/benchmarks.md's "I-JEPA's collapse, traced":

    python bench/ijepa_collapse.py --steps 600 --every 150                               # paper's narrow predictor: collapses
    python bench/ijepa_collapse.py --steps 500 --every 250 --pdepth 4 --pdim 192 --lr 5e-4 --ema 0.996 0.996
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch

import objectives as bo  # noqa: I001  (bench/ is on sys.path)
from sslkit.data import ShardDataModule
from sslkit.losses.ijepa import ijepa_loss, ijepa_targets
from sslkit.objectives import IJEPA


def context_losses(model: IJEPA, batch: dict[str, Any]) -> dict[str, float]:
    """The loss on ``batch`` with the real context, a zeroed one, and the next image's."""
    x, ctx, lens, tgt = batch["views"][0], batch["masks_context"], batch.get("masks_context_lens"), batch["masks_target"]
    with torch.no_grad():
        h = ijepa_targets(model.teacher_backbone.forward_features(x), tgt)
        z = model.backbone.forward_features(x, keep=ctx, keep_lens=lens)
        loss = {name: ijepa_loss(model.predictor(zc, ctx, tgt.flatten(0, 1), context_lens=lens), h)
                for name, zc in (("context", z), ("zero_context", torch.zeros_like(z)), ("other_image", z.roll(1, 0)))}
    return {k: round(float(v), 4) for k, v in loss.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=150)
    p.add_argument("--patch-size", type=int, default=8)
    p.add_argument("--pdepth", type=int, default=2, help="predictor blocks")
    p.add_argument("--pdim", type=int, default=96, help="predictor width (the encoder is 192 wide)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ema", type=float, nargs=2, default=(0.97, 0.995), metavar=("START", "END"))
    p.add_argument("--shards", type=Path, default=Path("/tmp/shards"))
    p.add_argument("--cifar-root", type=Path, default=bo.ROOT.parent / "shared" / "data" / "cifar10")
    p.add_argument("--out", type=Path, default=bo.ROOT / "runs" / "ijepa_collapse.json")
    args = p.parse_args()
    torch.set_num_threads(2)
    tars = bo.ensure_shards(args.shards, args.cifar_root)
    setup = bo.Setup(patch_size=args.patch_size)
    evaluate = bo.Evaluator({"train": tars["train"][:2], "test": tars["test"][:1]}, setup.image_size, 1)
    L.seed_everything(0, verbose=False)
    model = IJEPA(backbone=bo.BACKBONE, backbone_kwargs=setup.backbone_kwargs(), predictor_embed_dim=args.pdim,
                  predictor_depth=args.pdepth, predictor_num_heads=3, ema_momentum=args.ema[0],
                  ema_momentum_end=args.ema[1], **setup.optim(lr=args.lr, weight_decay=0.04, betas=(0.9, 0.999)))
    collate, views = bo.ijepa_masks(setup), bo._masked_views(setup, 0.3, 0.0)  # bench/objectives.py's I-JEPA data
    log: list[dict[str, Any]] = []
    probe: dict[str, Any] = {}

    def report(step: int) -> None:
        row = {"step": step, "teacher": evaluate(copy.deepcopy(model.teacher_backbone), "pooled"),
               "student": evaluate(copy.deepcopy(model.backbone), "pooled"),
               "loss": context_losses(model, probe["batch"]) if "batch" in probe else None}
        log.append(row)
        print(json.dumps(row), flush=True)

    class Report(L.Callback):
        def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
            probe.setdefault("batch", batch)

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int) -> None:
            if trainer.global_step % args.every == 0:
                report(trainer.global_step)

    report(0)
    dm = ShardDataModule(tars["train"][:20], batch_size_per_device=64, num_workers=1, train_transform=views,
                         collate_fn=collate, shuffle_buffer=1000, seed=0, pin_memory=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, max_epochs=100, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                        callbacks=[Report()], num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "log": log}, indent=2))
    print(f"log: {args.out}")


if __name__ == "__main__":
    main()
