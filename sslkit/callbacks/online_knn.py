"""Online kNN monitor: weighted kNN accuracy on a small labelled subset at validation-epoch end."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch

from sslkit.callbacks.features import FeatureFn, backbone_features, batch_images


class OnlineKNN(L.Callback):
    """Log ``val/knn_top1`` / ``val/knn_top5`` (first ``(k, T)``) and every ``val/knn_k{k}_t{T}_top1``.

    The bank and the queries come from two eval loaders the callback owns (e.g. 10k training and
    2k validation images, un-augmented), so the number is comparable across epochs and methods.
    Features come from ``feature_fn`` (default: the eval backbone, see
    :mod:`sslkit.callbacks.features`). Runs on global rank 0 only (the loaders are not sharded).

    Args:
        bank_loader: eval batches (``"image"``, ``"label"``) of the bank (training subset).
        query_loader: eval batches of the queries (validation subset).
        ks: neighbour counts of the sweep.
        temps: vote temperatures.
        every_n_epochs: run on epochs where ``(epoch + 1) % every_n_epochs == 0``.
        feature_fn: ``(pl_module, images) -> (B, D)``.
    """

    def __init__(
        self,
        bank_loader: Iterable[dict[str, Any]],
        query_loader: Iterable[dict[str, Any]],
        ks: Sequence[int] = (20,),
        temps: Sequence[float] = (0.07,),
        every_n_epochs: int = 1,
        feature_fn: FeatureFn | None = None,
    ) -> None:
        self.bank_loader, self.query_loader = bank_loader, query_loader
        self.ks, self.temps, self.every_n_epochs = tuple(ks), tuple(temps), every_n_epochs
        self.feature_fn = feature_fn or backbone_features

    def _features(self, pl_module: L.LightningModule, loader: Iterable[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        feats, labels = [], []
        for batch in loader:
            x = batch_images(batch).to(pl_module.device)
            with torch.no_grad():
                feats.append(self.feature_fn(pl_module, x).float().cpu())
            labels.append(torch.as_tensor(batch["label"]).reshape(-1))
        return torch.cat(feats).numpy(), torch.cat(labels).numpy()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if not trainer.is_global_zero:
            return
        from sslkit.evaluation.knn import knn_classify, knn_key  # here: evaluation -> distributed -> callbacks

        bank, bank_labels = self._features(pl_module, self.bank_loader)
        queries, query_labels = self._features(pl_module, self.query_loader)
        result = knn_classify(bank, bank_labels, queries, query_labels, self.ks, self.temps)
        k, t = self.ks[0], self.temps[0]
        metrics = {"val/knn_top1": result[knn_key(k, t, "top1")], "val/knn_top5": result[knn_key(k, t, "top5")]}
        metrics.update({f"val/knn_{knn_key(k, t, 'top1')}": result[knn_key(k, t, "top1")] for k in self.ks for t in self.temps})
        for name, value in metrics.items():
            pl_module.log(name, value, rank_zero_only=True)
