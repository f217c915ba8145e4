"""Fixtures for objective tests: a two-step CPU fit on tests/conftest.py's digit shards."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch

from sslkit.data import ShardDataModule


@pytest.fixture
def fit_steps(digit_shards: Path, tmp_path: Path) -> Callable[..., L.Trainer]:
    """``fit_steps(model, transform, collate_fn=None, steps=2, batch_size=8, precision="32-true")``: a real CPU fit."""

    def run(model: L.LightningModule, transform: Callable, collate_fn: Callable | None = None, steps: int = 2,
            batch_size: int = 8, precision: str = "32-true") -> L.Trainer:
        dm = ShardDataModule(
            digit_shards, batch_size_per_device=batch_size, num_workers=0, train_transform=transform,
            collate_fn=collate_fn, shuffle_buffer=16, persistent_workers=False, pin_memory=False,
        )
        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_steps=steps, max_epochs=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=tmp_path, precision=precision,
        )
        trainer.fit(model, datamodule=dm)
        return trainer

    return run


@pytest.fixture
def fit_ema_steps(fit_steps: Callable[..., L.Trainer]) -> Callable[..., L.Trainer]:
    """``fit_steps`` for an EMA objective, asserting the shared EMA contract after the fit.

    The loss is finite; the teacher backbone moved; no teacher parameter (backbone, projection head)
    has a gradient, requires one, or sits in the optimizer; ``eval_backbone()`` is the teacher.
    """

    def run(model: L.LightningModule, transform: Callable, **kwargs: object) -> L.Trainer:
        before = [p.detach().clone() for p in model.teacher_backbone.parameters()]
        trainer = fit_steps(model, transform, **kwargs)
        assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
        assert any(not torch.equal(a, b) for a, b in zip(before, model.teacher_backbone.parameters()))
        teacher = [*model.teacher_backbone.parameters(), *model.teacher_projection_head.parameters()]
        assert all(p.grad is None and not p.requires_grad for p in teacher)
        in_optimizer = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
        assert not in_optimizer & {id(p) for p in teacher}
        assert model.eval_backbone() is model.teacher_backbone
        return trainer

    return run
