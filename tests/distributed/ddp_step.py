"""Driver for test_ddp_equivalence: a few optimizer steps of an objective on one fixed global batch.

Run as one process (``--devices 1``), under ``torchrun --nproc_per_node 2`` (``--devices 2``), or
as a plain process that lets Lightning start the second rank (``--devices 2``). Rank ``r`` of ``R``
trains on rows ``[r * B / R, (r + 1) * B / R)`` of the same global batch, so every launch optimizes
the same objective. Writes ``loss-rank{r}.json`` (per-step local losses) and ``state.pt`` (rank 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 48, "num_heads": 3}
GLOBAL_BATCH = 8


def without_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm1d -> per-sample GroupNorm(1, C): PyTorch has no SyncBatchNorm on CPU (see the test)."""
    for name, child in model.named_children():
        if isinstance(child, torch.nn.BatchNorm1d):
            setattr(model, name, torch.nn.GroupNorm(1, child.num_features))
        else:
            without_batchnorm(child)
    return model


def build_model(name: str) -> L.LightningModule:
    common = dict(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64, proj_output_dim=32,
                  optimizer="sgd", lr=0.5, weight_decay=0.0, warmup_epochs=0)
    if name == "simclr":
        from sslkit.objectives import SimCLR

        return without_batchnorm(SimCLR(temperature=0.2, gather_distributed=True, **common))
    if name == "byol":
        from sslkit.objectives.byol import BYOL
        from sslkit.teacher import make_teacher

        model = without_batchnorm(BYOL(ema_momentum=0.9, ema_momentum_end=0.9, **common))
        # The teacher is a copy of the student: rebuild it from the converted student.
        model.teacher_backbone.load_state_dict(model.backbone.state_dict())
        model.teacher_projection_head = make_teacher(model.projection_head)
        return model
    raise ValueError(name)


class RankSlice(L.LightningDataModule):
    """The global batch (two 32-px views, seeded), this rank's rows of it, ``steps`` times."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(1234)
        views = [torch.rand(GLOBAL_BATCH, 3, 32, 32, generator=g) for _ in range(2)]
        rank, world = self.trainer.global_rank, self.trainer.world_size
        rows = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
        batch = {"views": [v[rows] for v in views], "label": torch.zeros(GLOBAL_BATCH)[rows].long(),
                 "key": [f"s{i}" for i in range(GLOBAL_BATCH)][rows]}
        return DataLoader([batch] * self.steps, batch_size=None)


class Record(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out, self.losses = out, []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        (self.out / f"loss-rank{trainer.global_rank}.json").write_text(json.dumps(self.losses))
        if trainer.is_global_zero:
            torch.save({k: v.detach().cpu() for k, v in pl_module.state_dict().items()}, self.out / "state.pt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objective", required=True)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    L.seed_everything(0)
    model = build_model(args.objective)
    trainer = L.Trainer(
        accelerator="cpu", devices=args.devices, strategy="ddp" if args.devices > 1 else "auto",
        max_steps=args.steps, use_distributed_sampler=False, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[Record(args.out)],
    )
    trainer.fit(model, datamodule=RankSlice(args.steps))


if __name__ == "__main__":
    main()
