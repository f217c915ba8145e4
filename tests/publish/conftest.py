"""Fixtures for publishing tests: real digits in shards, and run directories of really trained models.

Each run is a 2-step CPU fit, saved the way ``sslkit pretrain`` lays out a run directory
(``config.yaml``, ``checkpoints/last.ckpt``, ``metrics.csv``); built once per session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml

from sslkit.data import ImageSource, ShardDataModule, open_source, write_shards
from tests.conftest import TINY_VIT

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


@pytest.fixture(scope="session")
def publish_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 real 32-px digits in two shards of 32 (``digits-000000.tar`` / ``-000001.tar``) + manifest."""
    out = tmp_path_factory.mktemp("publish_shards")
    source = open_source("digits", split="train", size=32)
    samples = [s for _, s in zip(range(64), source)]
    first64 = ImageSource(source.name, source.class_names, len(samples), lambda: iter(samples))
    write_shards(first64, out, prefix="digits", max_samples_per_shard=32, progress=False)
    return out


def _objective(kind: str) -> tuple[L.LightningModule, Callable, Callable | None]:
    from sslkit.objectives import DINO, SimCLR
    from sslkit.transforms import MultiCropViews, SimCLRViews

    simclr_views = SimCLRViews(input_size=32, blur_prob=0.0, mean=MEAN, std=STD)
    if kind == "dino_vit":
        model = DINO(backbone="vit_tiny_patch16_224", backbone_kwargs={**TINY_VIT, "dynamic_img_size": True},
                     proj_hidden_dim=64, proj_bottleneck_dim=16, proj_output_dim=128, warmup_epochs=0)
        views = MultiCropViews(global_crop_size=32, local_crop_size=16, num_local_views=2, blur_probs=(0.0, 0.0, 0.0))
        return model, views, None
    if kind == "ijepa_vit":
        from sslkit.masking import MultiBlockMaskCollator
        from sslkit.objectives import IJEPA
        from sslkit.transforms import MaskedImageViews

        model = IJEPA(backbone_kwargs={**TINY_VIT, "patch_size": 4}, predictor_embed_dim=24, predictor_depth=1,
                      predictor_num_heads=3, warmup_epochs=0)
        return model, MaskedImageViews(input_size=32, augment=False), MultiBlockMaskCollator(32, 4)
    if kind in ("simclr_resnet18", "simclr_resnet18_cifar"):
        backbone = kind.removeprefix("simclr_")
        model = SimCLR(backbone=backbone, proj_hidden_dim=64, proj_output_dim=32, warmup_epochs=0, optimizer="sgd",
                       lr=0.05)
        return model, simclr_views, None
    raise KeyError(kind)


def train_run(kind: str, shards: Path, run_dir: Path, steps: int = 2) -> Path:
    """Fit ``kind`` for ``steps`` on CPU and lay the result out as an sslkit run directory.

    The checkpoint carries the run record that ``sslkit pretrain`` writes (dataset from the manifest,
    budget from the trainer, preprocessing from the eval transform), via the same callback.
    """
    from sslkit.callbacks.run_record import RunRecorder
    from sslkit.preflight import run_record

    torch.manual_seed(0)
    model, views, collate = _objective(kind)
    hparams = {k: v for k, v in dict(model.hparams).items() if not k.startswith("_")}
    config: dict[str, Any] = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "max_steps": steps, "precision": "32-true"},
        "model": {"class_path": f"{type(model).__module__}.{type(model).__qualname__}", "init_args": hparams},
        "data": {"class_path": "sslkit.data.ShardDataModule", "init_args": {
            "train_shards": str(shards), "batch_size_per_device": 8,
            "eval_transform": {"class_path": "sslkit.transforms.EvalTransform",
                               "init_args": {"input_size": 32, "mean": MEAN, "std": STD}}}},
    }
    dm = ShardDataModule(shards, batch_size_per_device=8, num_workers=0, train_transform=views, collate_fn=collate,
                         shuffle_buffer=16, persistent_workers=False, pin_memory=False)
    recorder = RunRecorder(run_record(config["model"], config["data"], [f"test/{kind}"], str(run_dir)), run_dir)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=run_dir, callbacks=[recorder])
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run_dir / "metrics.csv").write_text("epoch,step,train/loss\n" + "".join(f"0,{s},1.0\n" for s in range(steps)))
    return run_dir


@pytest.fixture(scope="session")
def trained_run(publish_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``trained_run(kind)``: the run directory of a 2-step fit of ``kind`` (cached for the session)."""
    cache: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = train_run(kind, publish_shards, tmp_path_factory.mktemp(kind))
        return cache[kind]

    return get
