"""Driver for test_zero_training: an EMA objective under DeepSpeed ZeRO through Lightning, resumable.

``python zero_run.py --objective {byol,ijepa,dinov2,msn} --stage {2,3} --steps N --shards DIR --out DIR [--cpu]``
trains to ``N`` optimizer steps in bf16, saving ``OUT/checkpoints/last.ckpt`` (a DeepSpeed folder)
every 2 steps and resuming from it when present. ``--cpu`` runs DeepSpeed's CPU accelerator over gloo
through :class:`CPUZeROStrategy`, which skips only Lightning's CUDA check (Lightning's DeepSpeed
strategy refuses CPUs, DeepSpeed itself does not).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.callbacks import ModelCheckpoint

from sslkit.data import ShardDataModule
from sslkit.distributed import PreemptionCheckpoint
from sslkit.distributed.zero import ZeROStrategy
from sslkit.teacher import ema_state_dict

TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 48, "num_heads": 3}


class CPUZeROStrategy(ZeROStrategy):
    """ZeRO on DeepSpeed's CPU accelerator (gloo), for tests on machines without CUDA."""

    @property
    def root_device(self) -> torch.device:
        return torch.device("cpu", self.local_rank)  # DeepSpeed reads the device index

    def setup_environment(self) -> None:
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()


class DumpShadows(L.Callback):
    """Write the fp32 EMA shadows as training (re)starts: after a resume, the restored ones."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save(ema_state_dict(pl_module), self.out / f"shadows-at-start-step{trainer.global_step}.pt")


def build(objective: str) -> tuple[L.LightningModule, dict]:
    """The objective (tiny ViT) and the data module arguments its views/collator need."""
    common = dict(backbone="vit_tiny_patch16_224", warmup_epochs=0, lr=1e-3)
    if objective == "byol":
        from sslkit.objectives.byol import BYOL
        from sslkit.transforms import BYOLViews

        model = BYOL(backbone_kwargs=TINY_VIT, proj_hidden_dim=64, proj_output_dim=32, ema_momentum=0.9,
                     ema_momentum_end=0.9, **common)
        return model, {"train_transform": BYOLViews(input_size=32)}
    if objective == "ijepa":
        from sslkit.masking import MultiBlockMaskCollator
        from sslkit.objectives.ijepa import IJEPA
        from sslkit.transforms import MaskedImageViews

        kwargs = {**TINY_VIT, "patch_size": 4, "class_token": False, "global_pool": "avg"}
        model = IJEPA(backbone_kwargs=kwargs, predictor_embed_dim=24, predictor_depth=1, predictor_num_heads=3,
                      ema_momentum=0.9, ema_momentum_end=0.9, **common)
        return model, {"train_transform": MaskedImageViews(input_size=32),
                       "collate_fn": MultiBlockMaskCollator(input_size=32, patch_size=4, min_keep=4)}
    if objective in ("dinov2", "msn"):
        from sslkit.masking import IBOTMaskCollator, RandomMaskCollator
        from sslkit.objectives import MSN, DINOv2
        from sslkit.transforms import MultiCropViews

        views = MultiCropViews(global_crop_size=32, local_crop_size=16, num_local_views=1, blur_probs=(0.0, 0.0, 0.0))
        kwargs = {**TINY_VIT, "dynamic_img_size": True}
        if objective == "msn":
            model = MSN(backbone_kwargs=kwargs, proj_hidden_dim=64, proj_output_dim=16, num_prototypes=8,
                        ema_momentum=0.9, ema_momentum_end=0.9, **common)
            return model, {"train_transform": views, "collate_fn": RandomMaskCollator(input_size=32, patch_size=8)}
        model = DINOv2(backbone_kwargs=kwargs, proj_hidden_dim=64, proj_bottleneck_dim=16, proj_output_dim=32,
                       ema_momentum=0.9, ema_momentum_end=0.9, **common)
        return model, {"train_transform": views, "collate_fn": IBOTMaskCollator(input_size=32, patch_size=8)}
    raise ValueError(objective)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objective", required=True)
    parser.add_argument("--stage", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--shards", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, data = build(args.objective)
    datamodule = ShardDataModule(args.shards, batch_size_per_device=8, num_workers=0, pin_memory=False,
                                 persistent_workers=False, **data)
    strategy = (CPUZeROStrategy if args.cpu else ZeROStrategy)(stage=args.stage)
    last = args.out / "checkpoints" / "last.ckpt"
    trainer = L.Trainer(
        accelerator="cpu" if args.cpu else "gpu", devices=1, strategy=strategy,
        precision="bf16-true",  # as recipes/_base/trainer/deepspeed_*.yaml
        max_steps=args.steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=args.out,
        callbacks=[ModelCheckpoint(last.parent, save_last=True, save_top_k=0, every_n_train_steps=2),
                   PreemptionCheckpoint(), DumpShadows(args.out)],  # as sslkit pretrain: last.ckpt at the end
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None)


if __name__ == "__main__":
    main()
