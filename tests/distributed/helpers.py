"""Helpers for the distributed tests: a tiny pretrain recipe, a deterministic view transform, key-log checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import Callback
from PIL import Image, ImageOps

from sslkit.callbacks.sample_log import read_key_log
from sslkit.data.collate import pil_to_tensor
from tests.conftest import TINY_VIT

REPO_ROOT = Path(__file__).resolve().parents[2]


class FixedViews:
    """Two deterministic views (the image and its mirror): a run's weights depend only on its batches."""

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        return [pil_to_tensor(image), pil_to_tensor(ImageOps.mirror(image))]


class SlowSteps(Callback):
    """Sleep after each training step, so a signal sent at step k lands a step or two later."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args: Any) -> None:
        time.sleep(self.seconds)


def tiny_recipe(shards: Path, key_dir: Path, *, batch_size: int = 8, num_workers: int = 1, max_epochs: int = 2,
                every_n_train_steps: int = 3, devices: int = 1, strategy: str | None = None,
                step_seconds: float = 0.0) -> dict[str, Any]:
    """SimCLR on a 2-block ViT over the digit shards, logging each step's sample keys to ``key_dir``."""
    trainer: dict[str, Any] = {
        "accelerator": "cpu", "devices": devices, "max_epochs": max_epochs, "log_every_n_steps": 1,
        "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
        "callbacks": [{"class_path": "sslkit.callbacks.sample_log.SampleKeyLog", "init_args": {"out_dir": str(key_dir)}}],
    }
    if strategy:
        trainer["strategy"] = strategy
    if step_seconds:
        trainer["callbacks"].append({"class_path": "tests.distributed.helpers.SlowSteps",
                                     "init_args": {"seconds": step_seconds}})
    return {
        "seed_everything": 0,
        "trainer": trainer,
        "checkpoint": {"every_n_train_steps": every_n_train_steps, "save_last": True, "save_top_k": 0},
        "model": {"class_path": "sslkit.objectives.SimCLR", "init_args": {
            "backbone": "vit_tiny_patch16_224", "backbone_kwargs": TINY_VIT, "proj_hidden_dim": 64,
            "proj_output_dim": 32, "temperature": 0.2, "optimizer": "adamw", "lr": 1e-3, "warmup_epochs": 0}},
        "data": {"class_path": "sslkit.data.ShardDataModule", "init_args": {
            "train_shards": str(shards), "batch_size_per_device": batch_size, "num_workers": num_workers,
            "shuffle_buffer": 16, "seed": 3, "pin_memory": False, "persistent_workers": True,
            "train_transform": {"class_path": "tests.distributed.helpers.FixedViews"}}},
    }


def write_recipe(recipe: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def child_env(run_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a ``sslkit pretrain`` child: the repo importable (``tests.distributed.helpers``), 1 thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PMI_", "TORCHELASTIC_"))}
    env.update(SSLKIT_RUN_DIR=str(run_dir), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def pretrain_command(recipe: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sslkit.cli", "pretrain", "-c", str(recipe), *extra]


def run_pretrain(recipe: Path, run_dir: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(pretrain_command(recipe, *extra), env=child_env(run_dir), capture_output=True,
                            text=True, timeout=timeout, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def effective_steps(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps whose updates survive: a step logged again after a resume replaces the lost one."""
    by_step: dict[int, dict[str, Any]] = {}
    for record in records:  # file order: a later run's record of the same step wins
        by_step[record["step"]] = record
    return [by_step[s] for s in sorted(by_step)]


def assert_exactly_once(key_dir: Path, num_ranks: int, num_samples: int, num_epochs: int, steps_per_epoch: int) -> None:
    """Every sample of every epoch trained on exactly once across ranks; no step missing or extra."""
    per_epoch: dict[int, Counter] = {e: Counter() for e in range(num_epochs)}
    for rank in range(num_ranks):
        records = effective_steps(read_key_log(key_dir / f"keys-rank{rank}.jsonl"))
        assert [r["step"] for r in records] == list(range(1, num_epochs * steps_per_epoch + 1)), f"rank {rank} steps"
        for r in records:
            assert r["epoch"] == (r["step"] - 1) // steps_per_epoch
            per_epoch[r["epoch"]].update(r["keys"])
    for epoch, keys in per_epoch.items():
        lost, repeated = num_samples - len(keys), sum(c - 1 for c in keys.values())
        assert (lost, repeated) == (0, 0), f"epoch {epoch}: {lost} lost, {repeated} repeated"
