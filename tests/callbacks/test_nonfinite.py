"""Non-finite loss: the step updates nothing, N in a row stop the run, NaN weights are never saved."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from sslkit.callbacks.nonfinite import NonFiniteLoss, NonFiniteLossError
from sslkit.distributed.checkpoint_io import AtomicCheckpointIO
from sslkit.errors import UserError
from sslkit.evaluation.features import extract_features


class Poisoned(pl.LightningModule):
    """A linear model whose loss is NaN at the given steps."""

    def __init__(self, bad_steps: set[int]) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.bad_steps = bad_steps
        self.history: list[torch.Tensor] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self.layer(batch).pow(2).mean()
        self.history.append(self.layer.weight.detach().clone())
        return loss * float("nan") if self.global_step in self.bad_steps else loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=0.1, weight_decay=0.1)


def _fit(tmp_path: Path, model: Poisoned, steps: int, max_consecutive: int) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, plugins=[AtomicCheckpointIO()],
                         callbacks=[NonFiniteLoss(max_consecutive),
                                    ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=1, save_last=True)])
    trainer.fit(model, DataLoader(torch.randn(64, 4), batch_size=4))
    return trainer


def test_nonfinite_step_updates_nothing(tmp_path: Path) -> None:
    model = Poisoned({2, 3})
    trainer = _fit(tmp_path, model, steps=6, max_consecutive=5)
    assert trainer.global_step == 6
    w = model.history  # weights seen by steps 0..5
    assert torch.equal(w[2], w[3]) and torch.equal(w[3], w[4])  # steps 2 and 3 changed nothing (no decay either)
    assert not torch.equal(w[4], w[5]) and torch.isfinite(model.layer.weight).all()
    assert trainer.callbacks[0].skipped_total == 2


def test_stops_after_n_in_a_row_naming_step_and_checkpoint(tmp_path: Path) -> None:
    model = Poisoned(set(range(3, 100)))
    with pytest.raises(NonFiniteLossError) as err:
        _fit(tmp_path, model, steps=50, max_consecutive=4)
    message = str(err.value)
    # global_step counts the skipped steps too: the loss of the 4th step (global_step 3 -> 4) was the first NaN;
    # the checkpoints of skipped steps hold the same, finite weights
    assert "at step 7" in message and "from step 4" in message and "last.ckpt (step 6)" in message
    assert isinstance(err.value, UserError) and "\n" not in message


def test_nonfinite_weights_never_saved(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 1}, tmp_path / "last.ckpt")
    io.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("nan")])}, "global_step": 2}, tmp_path / "last.ckpt")
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 1


def test_evaluation_refuses_nonfinite_features() -> None:
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    loader = [{"image": torch.ones(4, 3), "label": torch.zeros(4), "key": ["a", "b", "c", "d"]}]
    with pytest.raises(UserError, match="4 of 4 images .first: a. are not finite"):
        extract_features(model, loader)
    assert np.isfinite(extract_features(nn.Linear(3, 2), loader).feats).all()
