"""Online linear probe: a linear head trained on detached features, with its own optimizer."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from sslkit.callbacks.features import FeatureFn, backbone_features, batch_images, training_features


class OnlineLinearProbe(L.Callback):
    """Train a linear head on each training batch's detached features; report its accuracy.

    The head and its AdamW live in the callback, not in the objective, so the objective's optimizer,
    parameter groups and gradients are untouched; the backbone gets no gradient from the probe.
    Training features: see :mod:`sslkit.callbacks.features` (first view; ``outputs["feats"]`` when
    the objective returns them). Rows with label ``-1`` are ignored; a batch with none is skipped.
    Validation batches need ``"image"`` (or ``"views"``) and ``"label"``. Under DDP each rank's
    gradient is averaged across ranks, so the heads stay identical. Saved in checkpoints.

    Logs ``train/probe_loss``, ``train/probe_top1`` and ``val/probe_top1``.

    Args:
        num_classes: classes of the labels.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        feature_fn: ``(pl_module, images) -> (B, D)``.
    """

    def __init__(
        self, num_classes: int, lr: float = 1e-3, weight_decay: float = 0.0, feature_fn: FeatureFn | None = None
    ) -> None:
        self.num_classes, self.lr, self.weight_decay = num_classes, lr, weight_decay
        self.feature_fn = feature_fn
        self.head: nn.Linear | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._pending_state: dict[str, Any] | None = None
        self._correct = self._total = 0

    def _ensure_head(self, dim: int, device: torch.device) -> nn.Linear:
        if self.head is None:  # built lazily: the feature width is known at the first batch
            self.head = nn.Linear(dim, self.num_classes).to(device)
            self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            if self._pending_state is not None:
                self.head.load_state_dict(self._pending_state["head"])
                self.optimizer.load_state_dict(self._pending_state["optimizer"])
                self._pending_state = None
        return self.head.to(device)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        labels = batch["label"]
        keep = labels >= 0
        if not bool(keep.any()):
            return
        feats = training_features(pl_module, outputs, batch, self.feature_fn)[keep]
        head = self._ensure_head(feats.shape[1], feats.device)
        with torch.enable_grad():
            logits = head(feats)
            loss = F.cross_entropy(logits, labels[keep])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if trainer.world_size > 1:
            for p in head.parameters():
                p.grad = trainer.strategy.reduce(p.grad, reduce_op="mean")
        self.optimizer.step()
        top1 = 100.0 * (logits.argmax(-1) == labels[keep]).float().mean()
        pl_module.log("train/probe_loss", loss.detach(), batch_size=int(keep.sum()))
        pl_module.log("train/probe_top1", top1, batch_size=int(keep.sum()))

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._correct = self._total = 0

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        if self.head is None or not isinstance(batch, dict) or "label" not in batch:
            return
        keep = batch["label"] >= 0
        feats = (self.feature_fn or backbone_features)(pl_module, batch_images(batch)).float()
        with torch.no_grad():
            predictions = self.head(feats[keep]).argmax(-1)
        self._correct += int((predictions == batch["label"][keep]).sum())
        self._total += int(keep.sum())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = torch.tensor([self._correct, self._total], dtype=torch.float64, device=pl_module.device)
        correct, total = trainer.strategy.reduce(counts, reduce_op="sum").tolist()
        if total and not trainer.sanity_checking:
            pl_module.log("val/probe_top1", 100.0 * correct / total)

    def state_dict(self) -> dict[str, Any]:
        if self.head is None:
            return self._pending_state or {}
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_state = dict(state_dict) or None
        self.head = self.optimizer = None
