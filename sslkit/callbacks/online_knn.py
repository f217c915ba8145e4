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

    Runs at the end of every ``every_n_epochs``-th validation epoch, or of the training epoch for modules
    without a ``validation_step`` (every sslkit objective: Lightning skips their val loop).

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

    @classmethod
    def from_shards(
        cls, bank_shards: Any, query_shards: Any, transform: Any, bank_size: int = 5000, query_size: int = 1000,
        batch_size: int = 256, num_workers: int = 0, **kwargs: Any,
    ) -> OnlineKNN:
        """Bank and queries: the first ``bank_size`` / ``query_size`` samples (shard order) of two splits."""
        from sslkit.data import build_eval_loader

        def subset(shards: Any, limit: int) -> Iterable[dict[str, Any]]:
            return _FirstSamples(lambda: build_eval_loader(shards, transform, batch_size, num_workers), limit)

        return cls(subset(bank_shards, bank_size), subset(query_shards, query_size), **kwargs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and _has_validation_step(pl_module):
            self._run(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not _has_validation_step(pl_module):  # sslkit's objectives: Lightning never runs a val loop
            self._run(trainer, pl_module)

    def _run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        from sslkit.evaluation.knn import knn_classify, knn_key  # here: evaluation -> distributed -> callbacks

        bank, bank_labels = self._features(pl_module, self.bank_loader)
        queries, query_labels = self._features(pl_module, self.query_loader)
        result = knn_classify(bank, bank_labels, queries, query_labels, self.ks, self.temps)
        k, t = self.ks[0], self.temps[0]
        metrics = {"val/knn_top1": result[knn_key(k, t, "top1")], "val/knn_top5": result[knn_key(k, t, "top5")]}
        metrics.update({f"val/knn_{knn_key(k, t, 'top1')}": result[knn_key(k, t, "top1")] for k in self.ks for t in self.temps})
        for name, value in metrics.items():
            pl_module.log(name, value, rank_zero_only=True)
        pl_module.train(was_training)


def _has_validation_step(pl_module: L.LightningModule) -> bool:
    return type(pl_module).validation_step is not L.LightningModule.validation_step


class _FirstSamples:
    """Re-iterable: the batches of a fresh loader up to ``limit`` samples (the last one cut)."""

    def __init__(self, make_loader: Any, limit: int) -> None:
        self.make_loader, self.limit = make_loader, limit

    def __iter__(self) -> Any:
        seen = 0
        for batch in self.make_loader():
            take = min(len(batch["label"]), self.limit - seen)
            yield {k: v[:take] for k, v in batch.items()}
            seen += take
            if seen >= self.limit:
                return


class OnlineKNNSettings:
    """The ``online_knn:`` section of a recipe: ``sslkit pretrain`` adds an :class:`OnlineKNN` whenever the data
    sets ``val_shards`` (bank: training split, queries: validation split, both un-augmented subsets).

    Args:
        enabled: ``false`` turns the monitor off.
        every_n_epochs: run after every n-th training epoch (and after the last one).
        bank_size: training samples in the bank.
        query_size: validation samples queried.
        k: neighbours.
        temperature: vote temperature.
    """

    def __init__(self, enabled: bool = True, every_n_epochs: int = 10, bank_size: int = 5000,
                 query_size: int = 1000, k: int = 20, temperature: float = 0.07) -> None:
        self.enabled, self.every_n_epochs = enabled, every_n_epochs
        self.bank_size, self.query_size, self.k, self.temperature = bank_size, query_size, k, temperature

    def callback(self, datamodule: Any) -> OnlineKNN | None:
        """The monitor for ``datamodule`` (a :class:`~sslkit.data.ShardDataModule`), or None if off / no val."""
        val = getattr(datamodule, "val_shards", None)
        if not (self.enabled and val):
            return None
        return OnlineKNN.from_shards(datamodule.train_shards, val, datamodule.eval_transform, self.bank_size,
                                     self.query_size, ks=(self.k,), temps=(self.temperature,),
                                     every_n_epochs=self.every_n_epochs)
