"""Preemption and interruption: on a stop signal, checkpoint at a step boundary on every rank, then stop.

SIGUSR1 (SLURM's warning), SIGTERM (``scancel``, ``kill``, a container stop) and SIGINT (Ctrl-C) all
lead to the same: a checkpoint at the next step boundary, then :class:`Preempted` (exit code
:data:`EXIT_PREEMPTED`); only SIGUSR1 also requeues the SLURM job. A second Ctrl-C stops at once.

SLURM sends ``--signal=USR1@<s>`` ``s`` seconds before the time limit (and ``scancel --signal=USR1``
sends it on demand). Lightning's own SLURM handler saves an ``hpc_ckpt_*.ckpt`` *inside the signal
handler*, i.e. in the middle of whatever the rank was doing: ranks receive the signal at different
moments, so under DDP the save's collectives can interleave with a training step's (a hang), and a
checkpoint taken mid-step disagrees with the data stream's count of consumed batches (a lost or
repeated batch). :class:`PreemptionCheckpoint` instead only records the signal; at the end of the
next training step all ranks agree through one boolean all-reduce (Lightning's
``strategy.reduce_boolean_decision``) and save the *same* checkpoint Lightning's ``ModelCheckpoint``
writes and ``sslkit pretrain --resume auto`` reads, ``<run_dir>/checkpoints/last.ckpt``, so there is
one resume path, not two. The data module's stream position is part of that checkpoint.
Rank 0 then runs ``scontrol requeue`` and every rank raises :class:`Preempted`;
``sslkit pretrain`` exits with :data:`EXIT_PREEMPTED`.

The callback also keeps ``last.ckpt`` current at every epoch end and at the end of training:
``ModelCheckpoint(every_n_train_steps=N)`` disables its epoch trigger (the two are exclusive) and
then only refreshes ``last.ckpt`` every N steps, so the run's final weights would not be in it.

Outside SLURM the same signal (``kill -USR1``) checkpoints and stops; under ``torchrun
--max-restarts`` the non-zero exit makes the agent restart the workers, which resume.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped early on purpose, run again to continue


class Preempted(Exception):
    """Raised on every rank after the preemption checkpoint is written (and the job requeued)."""

    def __init__(self, checkpoint: Path, requeued: bool) -> None:
        super().__init__(f"preempted: checkpoint {checkpoint}" + (", job requeued" if requeued else ""))
        self.checkpoint = checkpoint
        self.requeued = requeued


class PreemptionCheckpoint(Checkpoint):
    """Turn a preemption signal into a checkpoint at the next step boundary, then requeue and stop.

    A :class:`~lightning.pytorch.callbacks.Checkpoint`, so Lightning runs it after every other
    callback's ``on_train_batch_end`` (the sample-key log has recorded the step before it is saved).

    Args:
        signum: the requeue signal, name or number (SLURM sbatch templates send ``USR1``).
        requeue: on ``signum``, run ``scontrol requeue $SLURM_JOB_ID`` (rank 0) inside a SLURM job.
        stop_signals: further signals that checkpoint and stop without requeueing.
        save_last_on_epoch_end: also write ``last.ckpt`` at each epoch end and when training ends.
    """

    def __init__(self, signum: str | int = "SIGUSR1", requeue: bool = True, save_last_on_epoch_end: bool = True,
                 stop_signals: tuple[str, ...] = ("SIGTERM", "SIGINT")) -> None:
        self.signum = _signal(signum)
        self.requeue = requeue
        self.save_last_on_epoch_end = save_last_on_epoch_end
        self.stop_signals = tuple(_signal(s) for s in stop_signals if _signal(s) != self.signum)
        self.requested: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._saved_step = -1

    @property
    def state_key(self) -> str:
        return "PreemptionCheckpoint"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Registered before any DataLoader worker is forked, so workers inherit a harmless handler
        # instead of SIGUSR1's default action (terminate) when SLURM signals the whole process tree
        # (sslkit's ShardLoader workers ignore the stop signals anyway).
        self._install((self.signum, *self.stop_signals))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning's own SIGTERM handler (registered after setup), which would run a collective
        # inside the handler and stop mid-step; ours only sets a flag.
        self._install(self.stop_signals, replace=True)

    def _install(self, signums: tuple[signal.Signals, ...], replace: bool = False) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in signums:
            if signum not in self._previous:
                self._previous[signum] = signal.signal(signum, self._on_signal)
            elif replace:
                signal.signal(signum, self._on_signal)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handler(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_handler(trainer)  # Lightning skips teardown hooks when fit raises (Preempted included)

    def _restore_handler(self, trainer: pl.Trainer) -> None:
        if threading.current_thread() is threading.main_thread():
            # Lightning's signal connector recorded our handler as the one to put back at its teardown.
            originals = getattr(getattr(trainer, "_signal_connector", None), "_original_handlers", {})
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
                if originals.get(signum) == self._on_signal:
                    originals[signum] = previous
            self._previous = {}
        self.requested = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.requested == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without a checkpoint
        self.requested = signal.Signals(signum)  # only a flag: the work happens at the step boundary

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        close_finished_epoch(checkpoint)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        close_finished_epoch(checkpoint)  # checkpoints written before the repair existed

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.requested is not None, all=False):
            return
        path = last_checkpoint_path(trainer)
        name = self.requested.name if self.requested is not None else "on another rank"
        log.warning("preemption signal: saving %s at step %d (%s)", path, trainer.global_step, name)
        self._save(trainer, path)
        trainer.strategy.barrier("preemption-saved")
        # No collective after this point: the requeue makes SLURM send SIGTERM to every rank.
        wants_requeue = self.requeue and self.requested == self.signum
        requeued = wants_requeue and SLURMEnvironment.detect() and trainer.is_global_zero and requeue_slurm_job()
        raise Preempted(path, bool(requeued))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save_last(trainer)

    def _save_last(self, trainer: pl.Trainer) -> None:
        if not self.save_last_on_epoch_end or trainer.sanity_checking or self._saved_step == trainer.global_step:
            return
        if any(isinstance(c, ModelCheckpoint) and c.save_last and getattr(c, "_last_global_step_saved", -1) == trainer.global_step
               for c in trainer.checkpoint_callbacks):
            return  # ModelCheckpoint refreshed last.ckpt at this very step
        self._save(trainer, last_checkpoint_path(trainer))

    def _save(self, trainer: pl.Trainer, path: Path) -> None:
        # Tell ModelCheckpoint that last.ckpt is its own: otherwise, finding a last.ckpt it did not
        # write, it would start a competing last-v1.ckpt that --resume auto never reads.
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is not None and callback.save_last:
                if Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}" == path:
                    callback.last_model_path = str(path)
        trainer.save_checkpoint(path)
        self._saved_step = trainer.global_step


def _signal(value: str | int) -> signal.Signals:
    return signal.Signals[value] if isinstance(value, str) else signal.Signals(value)


def close_finished_epoch(checkpoint: dict[str, Any]) -> bool:
    """Record a checkpoint taken in the last step of an epoch as taken at that epoch's end.

    Lightning (2.6) restores such a checkpoint as "restarted mid-epoch on the last batch": it closes
    the epoch, but then keeps that restart stage for the next epoch, whose start it never counts
    (``epoch_progress`` stays at ready = completed). A checkpoint taken later in that epoch then reads
    as one taken after it, and resuming from it replays the whole epoch while the data stream stands
    at the next one (issue #12, finding 1). Written as an epoch-end checkpoint (``processed`` = the
    epoch), the state is restored as "resumed on epoch end" and the next epoch starts normally.
    Returns whether the checkpoint was changed.
    """
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    epochs, batches = loop.get("epoch_progress"), loop.get("epoch_loop.batch_progress")
    if not epochs or not batches or not batches.get("is_last_batch"):
        return False
    e, b = epochs["total"], batches["total"]
    inside_step = b["completed"] == b["ready"] - 1 and b["processed"] == b["ready"]
    mid_epoch = e["ready"] == e["started"] == e["processed"] + 1 and e["completed"] == e["processed"]
    if not (inside_step and mid_epoch):
        return False
    for part in ("total", "current"):
        epochs[part]["processed"] = epochs[part]["started"]
        batches[part]["completed"] = batches[part]["ready"]
    return True


def last_checkpoint_path(trainer: pl.Trainer) -> Path:
    """The ``last.ckpt`` of the trainer's ``ModelCheckpoint`` (``<default_root_dir>/checkpoints`` without one)."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is not None:
            return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"


def requeue_slurm_job() -> bool:
    """``scontrol requeue`` this job (or array task); the job needs ``--requeue``. Returns success."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if result.returncode != 0:
        log.error("scontrol requeue %s failed: %s", job, result.stderr.strip())
        return False
    log.warning("requeued SLURM job %s", job)
    return True
