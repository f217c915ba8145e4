"""Log the data stream's corrupt-data counters (``data/skipped_samples``, ``data/corrupt_shards``, ...)."""

from __future__ import annotations

from typing import Any

import lightning as L


class DataHealth(L.Callback):
    """Every ``every_n_steps`` training steps (and at epoch end), log the DataModule's counters.

    Counters are totals over the whole run: they are part of the data module's checkpointed state,
    so a resumed run continues them, and ``data/corrupt_shards`` counts distinct shards. They come
    from ``trainer.datamodule.data_counters()`` (see ``sslkit.data.ShardDataModule``; under DDP,
    rank 0's stream). A DataModule without them is ignored.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = every_n_steps

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, on_step: bool) -> None:
        counters = getattr(trainer.datamodule, "data_counters", None)
        values = counters() if callable(counters) else {}
        if values:
            pl_module.log_dict({k: float(v) for k, v in values.items()}, on_step=on_step, on_epoch=not on_step,
                               reduce_fx="max")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if (trainer.global_step + 1) % self.every_n_steps == 0:
            self._log(trainer, pl_module, on_step=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, on_step=False)
