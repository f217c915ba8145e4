"""``SampleKeyLog``: which sample keys every training step saw, one JSON line per step and rank.

Used to prove exactly-once delivery across preemption and resume. Each line is written with one
``write`` call and flushed, so after ``kill -9`` the file holds every complete step up to the kill;
:func:`read_key_log` ignores a torn last line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import lightning.pytorch as pl


class SampleKeyLog(pl.Callback):
    """Append ``{"epoch", "step", "rank", "keys"}`` per training step to ``out_dir/keys-rank{r}.jsonl``.

    ``step`` is ``trainer.global_step`` after the step; ``keys`` is ``batch["key"]``.

    Args:
        out_dir: folder for the logs (created if missing); a resumed run appends to the same files.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self._file: IO[str] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.out_dir / f"keys-rank{trainer.global_rank}.jsonl", "a", encoding="utf-8")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._file is None:
            return
        record = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "rank": trainer.global_rank,
            "keys": list(batch["key"]),
        }
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_key_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of one ``keys-rank{r}.jsonl``, skipping a torn last line left by a killed process."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        records.append(json.loads(line))
    return records
