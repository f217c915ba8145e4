"""The thin shared base of every objective: optimizer, parameter groups, warmup-cosine, eval backbone.

Everything else an objective needs (EMA updates, gathers, monitors) is a function, a module or a
callback, composed by the objective itself.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn

from sslkit.masking.grid import check_mask_grid
from sslkit.optim import build_optimizer, param_groups, warmup_cosine


class SSLObjective(L.LightningModule):
    """Base LightningModule: owns only optimisation and the checkpoint identity.

    Args:
        optimizer: ``"adamw"``, ``"lars"`` or ``"sgd"``.
        lr: Peak learning rate after warmup (absolute: recipes state it for their global batch).
        min_lr: Learning rate at the end of the cosine decay.
        weight_decay: Decay for weights; norms, biases and tokens get none.
        warmup_epochs: Linear warmup length, in (fractional) epochs.
        momentum: SGD/LARS momentum.
        betas: AdamW betas.

    Attributes:
        paper: The method's paper, ``"Authors, year, Title, arXiv:ID"``; each objective sets it (the
            model card of ``sslkit publish`` cites it).
    """

    paper: ClassVar[str] = ""

    def __init__(
        self,
        optimizer: Literal["adamw", "lars", "sgd"] = "adamw",
        lr: float = 1e-3,
        min_lr: float = 1e-6,
        weight_decay: float = 0.05,
        warmup_epochs: float = 10.0,
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.95),
    ) -> None:
        super().__init__()
        self.optimizer_name = optimizer
        self.lr = lr
        self.min_lr = min_lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.momentum = momentum
        self.betas = tuple(betas)

    # -- what subclasses may override -------------------------------------------------------------
    def trainable_modules(self) -> dict[str, nn.Module]:
        """Modules the optimizer updates; default: every child module with trainable parameters."""
        return {name: child for name, child in self.named_children()}

    def eval_backbone(self) -> nn.Module:
        """The backbone evaluation and publishing use: the EMA teacher's if there is one."""
        teacher = getattr(self, "teacher_backbone", None)
        return teacher if teacher is not None else self.backbone

    # -- optimisation -----------------------------------------------------------------------------
    def total_steps(self) -> int:
        """Optimizer steps in the whole run (the cosine horizon)."""
        total = self.trainer.estimated_stepping_batches
        if not isinstance(total, int) and not float(total).is_integer():
            raise ValueError("the run length is unknown: set trainer.max_epochs or trainer.max_steps")
        return int(total)

    def steps_per_epoch(self) -> float:
        max_epochs = self.trainer.max_epochs
        if max_epochs is None or max_epochs < 1:
            return float(self.total_steps())
        return self.total_steps() / max_epochs

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimizer (a group may carry its own ``lr``, e.g. layer-wise decay)."""
        return param_groups(self.trainable_modules(), self.weight_decay)

    def configure_optimizers(self) -> dict[str, Any]:
        groups = self.optimizer_groups()
        # Lightning's mixed-precision plugin refuses to clip the gradients of a fused optimizer (DINO clips at 3).
        clip_mixed = bool(self.trainer.gradient_clip_val) and isinstance(self.trainer.precision_plugin, MixedPrecision)
        opt = build_optimizer(self.optimizer_name, groups, lr=self.lr, momentum=self.momentum, betas=self.betas,
                              fused=not clip_mixed)
        total = self.total_steps()
        warmup = int(round(self.warmup_epochs * self.steps_per_epoch()))
        warmup = min(warmup, max(total - 1, 0))
        end = self.min_lr / self.lr

        def factor(step: int) -> float:
            return warmup_cosine(step, total, warmup, peak=1.0, end=end)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def setup(self, stage: str) -> None:
        # The data module's mask collator and the backbone must share one patch grid: refuse before step 0.
        collator = getattr(getattr(self.trainer, "datamodule", None), "collate_fn", None)
        check_mask_grid(collator, getattr(self, "backbone", None), type(self).__name__)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)

    # -- checkpoint identity ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lets `load_objective` rebuild the module with weights_only loading (no pickled classes).
        checkpoint["sslkit_objective"] = f"{type(self).__module__}.{type(self).__qualname__}"
