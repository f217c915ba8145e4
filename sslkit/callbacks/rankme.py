"""RankMe monitor: effective rank of training-batch embeddings each epoch, a collapse signal."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from sslkit.callbacks.features import FeatureFn, training_features
from sslkit.evaluation.rankme import rankme


class RankMeMonitor(L.Callback):
    """Log ``train/rankme`` at each training-epoch end over the epoch's first ``num_samples`` features.

    Features: see :mod:`sslkit.callbacks.features` (shared with the online probe, so no extra
    forward when both run). RankMe needs many more samples than feature dimensions to be faithful
    (the paper uses 25.6k); it is capped by ``min(num_samples, D)``. Computed per rank on that rank's
    samples and logged from rank 0.

    Args:
        num_samples: embeddings collected per epoch.
        feature_fn: ``(pl_module, images) -> (B, D)``.
    """

    def __init__(self, num_samples: int = 4096, feature_fn: FeatureFn | None = None) -> None:
        self.num_samples, self.feature_fn = num_samples, feature_fn
        self._buffer: list[torch.Tensor] = []
        self._count = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._buffer, self._count = [], 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._count >= self.num_samples:
            return
        feats = training_features(pl_module, outputs, batch, self.feature_fn)[: self.num_samples - self._count]
        self._buffer.append(feats.cpu())
        self._count += feats.shape[0]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._buffer:
            pl_module.log("train/rankme", rankme(torch.cat(self._buffer)), rank_zero_only=True)
        self._buffer, self._count = [], 0
