"""``NonFiniteLoss``: a step whose gradients are not finite updates nothing; too many in a row stop the run.

A NaN or infinite loss (a too-high learning rate, an fp16 overflow, a bad batch) makes every gradient
NaN; one such update ruins the weights for good. Before each optimizer step the callback checks the
gradients; when any is not finite it drops them all (``grad = None``: PyTorch optimizers leave such
parameters and their state untouched), so the step changes nothing, and logs ``train/skipped_steps``.
After ``max_consecutive`` such steps in a row it stops the run with one line naming the step and the
last good checkpoint (non-finite weights are never saved, see
:class:`~sslkit.distributed.checkpoint_io.AtomicCheckpointIO`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from sslkit.errors import UserError

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError):
    """Training stopped: the loss stayed non-finite for too many steps in a row."""


class NonFiniteLoss(pl.Callback):
    """Skip optimizer steps with non-finite gradients; stop after ``max_consecutive`` in a row.

    Args:
        max_consecutive: skipped steps in a row that stop the run (``0``: never stop).
    """

    def __init__(self, max_consecutive: int = 5) -> None:
        self.max_consecutive = max_consecutive
        self.skipped_total = 0
        self._in_a_row = 0
        self._skipped_now = False
        self._first_bad_step = 0

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        finite = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()) if grads else True
        # every rank must agree, or DDP replicas would diverge
        self._skipped_now = trainer.strategy.reduce_boolean_decision(not finite, all=False)
        if self._skipped_now:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._skipped_now:
            self._in_a_row = 0
            return
        self._skipped_now = False
        self.skipped_total += 1
        if self._in_a_row == 0:
            self._first_bad_step = trainer.global_step
            log.warning("non-finite loss/gradients at step %d: update skipped", trainer.global_step)
        self._in_a_row += 1
        pl_module.log("train/skipped_steps", float(self.skipped_total), on_step=True, reduce_fx="max")
        if self.max_consecutive and self._in_a_row >= self.max_consecutive:
            raise NonFiniteLossError(
                f"training stopped at step {trainer.global_step}: the loss was not finite for {self._in_a_row} steps"
                f" in a row (from step {self._first_bad_step}); last good checkpoint: {_last_good(trainer)};"
                " lower the learning rate or check the data, then resume"
            )

    def state_dict(self) -> dict[str, int]:
        return {"skipped_total": self.skipped_total}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skipped_total = int(state_dict.get("skipped_total", 0))


def _last_good(trainer: pl.Trainer) -> str:
    from sslkit.distributed.preemption import last_checkpoint_path

    path = Path(last_checkpoint_path(trainer))
    if not path.exists():
        return "none yet (training starts afresh)"
    step = torch.load(path, map_location="cpu", weights_only=True).get("global_step", "?")
    return f"{path} (step {step})"
