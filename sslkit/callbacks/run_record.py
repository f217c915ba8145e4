"""Callbacks the ``sslkit pretrain`` trainer always carries: the run record and a log at the last step."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import lightning as L

from sslkit.preflight import check_data
from sslkit.run_record import CHECKPOINT_KEY, RunRecord


class RunRecorder(L.Callback):
    """Completes the :class:`~sslkit.run_record.RunRecord` from the trainer's state, writes ``run.json``
    at the start of training and puts the record into every checkpoint (``checkpoint["sslkit_run"]``).

    Args:
        record: What the CLI knows before training (objective, recipes, datasets, preprocessing, batch).
        run_dir: Where ``run.json`` goes (rank 0 only).
    """

    def __init__(self, record: RunRecord, run_dir: str | Path) -> None:
        self.record, self.run_dir = record, Path(run_dir)

    def _update(self, trainer: L.Trainer) -> RunRecord:
        steps = trainer.num_training_batches
        steps_per_epoch = None
        if isinstance(steps, int) and steps > 0:  # optimizer steps per epoch
            steps_per_epoch = max(1, steps // max(1, trainer.accumulate_grad_batches))
        self.record.budget = dataclasses.replace(
            self.record.budget,
            world_size=trainer.world_size, num_nodes=trainer.num_nodes,
            accumulate_grad_batches=trainer.accumulate_grad_batches,
            max_epochs=trainer.max_epochs, max_steps=trainer.max_steps if trainer.max_steps > 0 else None,
            precision=str(trainer.precision), global_step=trainer.global_step,
            steps_per_epoch=steps_per_epoch or self.record.budget.steps_per_epoch,
        )
        return self.record

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._update(trainer)
        if trainer.is_global_zero:
            self.record.write(self.run_dir)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self._update(trainer).to_dict()


class LogLastStep(L.Callback):
    """Logs the metrics of the very last training step, whatever ``log_every_n_steps`` is.

    Lightning writes step metrics every ``log_every_n_steps`` or when ``trainer.should_stop`` is set; a
    run whose ``max_steps`` is below (or not a multiple of) the interval otherwise ends with its last loss
    unlogged (``metrics.csv`` without any loss for short runs).
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        last_step = 0 < trainer.max_steps <= trainer.global_step
        last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if last_step or (last_epoch and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch):
            trainer.should_stop = True


class CheckData(L.Callback):
    """Before anything is built for training: shard folders exist, have manifests, and the batch fits.

    Runs in ``setup`` (the world size is known, no worker or optimizer exists yet); a problem is one
    :class:`~sslkit.errors.UserError` line naming the recipe key to change.
    """

    def __init__(self, data: Any) -> None:
        self.data = data

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            check_data(self.data, trainer.world_size)
