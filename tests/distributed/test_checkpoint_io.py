"""Atomic checkpoint writes and the preemption callback, in process (no SLURM)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from sslkit.distributed import AtomicCheckpointIO, Preempted, PreemptionCheckpoint, recover_checkpoint
from sslkit.distributed.checkpoint_io import replace_dir
from sslkit.training import resolve_resume


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def torn_write(obj: object, f: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_write)
    with pytest.raises(OSError):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left behind


def test_folder_swap_interrupted_between_renames_is_recovered(tmp_path: Path) -> None:
    dst = tmp_path / "last.ckpt"
    for step in (1, 2):
        src = tmp_path / "last.ckpt.tmp"
        src.mkdir()
        (src / "step").write_text(str(step))
        replace_dir(src, dst)
    assert (dst / "step").read_text() == "2" and not (tmp_path / "last.ckpt.old").exists()
    (tmp_path / "last.ckpt.tmp").mkdir()
    (tmp_path / "last.ckpt.tmp" / "step").write_text("3")
    os.replace(dst, tmp_path / "last.ckpt.old")  # killed after the first rename of replace_dir
    assert resolve_resume("auto", tmp_path) == str(dst)
    assert (recover_checkpoint(dst) / "step").read_text() == "3"


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(torch.randn(40, 4), batch_size=4)


class SignalAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step - 1:
            os.kill(os.getpid(), signal.SIGUSR1)  # arrives mid-step; handled at the step's end


def _trainer(tmp_path: Path, *callbacks: pl.Callback) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, plugins=[AtomicCheckpointIO()],
        callbacks=[ModelCheckpoint(tmp_path / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=4),
                   PreemptionCheckpoint(), *callbacks],
    )


def test_signal_checkpoints_at_the_step_boundary_then_stops(tmp_path: Path) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(Preempted) as stop:
        _trainer(tmp_path, SignalAt(6)).fit(Tiny())
    assert signal.getsignal(signal.SIGUSR1) == previous  # handler restored
    assert not stop.value.requeued  # not a SLURM job
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert stop.value.checkpoint == last
    assert torch.load(last, weights_only=True)["global_step"] == 6
    trainer = _trainer(tmp_path)
    trainer.fit(Tiny(), ckpt_path=last)
    assert trainer.global_step == 20
    assert torch.load(last, weights_only=True)["global_step"] == 20  # last.ckpt holds the final step
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no competing last-v1.ckpt
