"""ShardDataModule: batches, eval loader, and exact resume through Lightning's ``fit(ckpt_path=...)``."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from sslkit.callbacks.sample_log import SampleKeyLog, read_key_log
from sslkit.data.datamodule import ShardDataModule, build_eval_loader
from sslkit.distributed.preemption import PreemptionCheckpoint
from tests.data.helpers import MakeShards


class TinyObjective(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = batch["views"][0].mean(dim=(2, 3))  # (B, 3)
        return self.layer(x).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Crash(Exception):
    pass


class CrashAtStep(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise Crash


def _trainer(tmp_path: Path, *callbacks: pl.Callback, max_epochs: int = 2) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
        callbacks=[SampleKeyLog(tmp_path / "keys"), PreemptionCheckpoint(save_last_on_epoch_end=False), *callbacks],
    )


def _datamodule(shards: Path) -> ShardDataModule:
    return ShardDataModule(shards, batch_size_per_device=4, num_workers=2, shuffle_buffer=8, seed=5,
                           pin_memory=False)


def test_fit_killed_mid_epoch_resumes_exactly(make_shards: MakeShards, tmp_path: Path) -> None:
    shards = make_shards(60, per_shard=10)  # 15 batches per epoch
    checkpoints = ModelCheckpoint(tmp_path / "ckpt", filename="{step}", every_n_train_steps=3, save_top_k=-1)
    with pytest.raises(Crash):
        _trainer(tmp_path, checkpoints, CrashAtStep(20)).fit(TinyObjective(), _datamodule(shards))
    ckpt = tmp_path / "ckpt" / "step=18.ckpt"  # epoch 1, 3 batches in; steps 19-20 are lost work
    assert torch.load(ckpt, weights_only=True)["ShardDataModule"]["batches_consumed"] == 3

    first = read_key_log(tmp_path / "keys" / "keys-rank0.jsonl")
    assert [r["step"] for r in first] == list(range(1, 21))
    trainer = _trainer(tmp_path)
    trainer.fit(TinyObjective(), _datamodule(shards), ckpt_path=ckpt)
    assert trainer.global_step == 30

    logged = read_key_log(tmp_path / "keys" / "keys-rank0.jsonl")
    run1, run2 = logged[:20], logged[20:]
    assert run2[:2] == run1[18:20]  # the lost steps 19-20 are replayed with the same samples
    records = [r for r in run1 if r["step"] <= 18] + run2
    assert [r["step"] for r in records] == list(range(1, 31))
    for epoch in (0, 1):
        keys = Counter(k for r in records if r["epoch"] == epoch for k in r["keys"])
        assert len(keys) == 60 and max(keys.values()) == 1, f"epoch {epoch} not exactly once"
    epoch_keys = [[k for r in records if r["epoch"] == e for k in r["keys"]] for e in (0, 1)]
    assert epoch_keys[0] != epoch_keys[1]


def test_train_batches_and_length(make_shards: MakeShards) -> None:
    shards = make_shards(30, per_shard=10)
    dm = ShardDataModule(shards, batch_size_per_device=4, num_workers=0, pin_memory=False)
    loader = dm.train_dataloader()
    assert len(loader) == 7  # drop: 30 // 4
    batch = next(iter(loader))
    assert isinstance(batch["views"], list) and batch["views"][0].shape == (4, 3, 8, 8)
    assert batch["label"].dtype == torch.long and len(batch["key"]) == 4
    assert dm.val_dataloader() == []


def test_val_dataloader_yields_eval_batches(make_shards: MakeShards) -> None:
    train, val = make_shards(20, per_shard=10), make_shards(9, per_shard=4, name="val", labels=False)
    dm = ShardDataModule(train, val_shards=str(val), batch_size_per_device=4, num_workers=0)
    batches = list(dm.val_dataloader())
    assert [b["image"].shape[0] for b in batches] == [4, 4, 1]
    assert sorted(k for b in batches for k in b["key"]) == [f"s{i:05d}" for i in range(9)]
    assert all((b["label"] == -1).all() for b in batches)


def test_remainder_policy_validated(make_shards: MakeShards) -> None:
    with pytest.raises(ValueError, match="remainder"):
        ShardDataModule(make_shards(8, per_shard=4), remainder="none")


def test_state_loaded_before_loader_exists(make_shards: MakeShards, caplog: pytest.LogCaptureFixture) -> None:
    shards = make_shards(40, per_shard=10)
    reference = [b["key"] for b in _datamodule(shards).train_dataloader()]
    source = _datamodule(shards)
    source.train_dataloader()
    state = source._train_stream.state_dict(batches_consumed=4)  # as Lightning restores it
    dm = _datamodule(shards)
    dm.load_state_dict(state)
    with caplog.at_level("WARNING"):
        resumed = [b["key"] for b in dm.train_dataloader()]
    assert resumed == reference[4:] and "does not match" not in caplog.text


def test_second_resume_from_end_of_epoch_checkpoint_no_replay(make_shards: MakeShards, tmp_path: Path) -> None:
    # Finding 1 of issue #12: checkpoints every 5 steps, 15 steps per epoch, so the checkpoints at steps
    # 15 and 30 are taken at an epoch's last batch. Crash at 17 (resume from 15), at 32 (resume from 30).
    shards = make_shards(60, per_shard=10)

    def fit(*callbacks: pl.Callback, ckpt_path: Path | None = None) -> pl.Trainer:
        checkpoints = ModelCheckpoint(tmp_path / "ckpt", filename="{step}", every_n_train_steps=5, save_top_k=-1)
        trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=tmp_path,
                             callbacks=[SampleKeyLog(tmp_path / "keys"), PreemptionCheckpoint(save_last_on_epoch_end=False),
                                        checkpoints, *callbacks])
        trainer.fit(TinyObjective(), _datamodule(shards), ckpt_path=ckpt_path)
        return trainer

    with pytest.raises(Crash):
        fit(CrashAtStep(17))
    with pytest.raises(Crash):
        fit(CrashAtStep(32), ckpt_path=tmp_path / "ckpt" / "step=15.ckpt")
    trainer = fit(ckpt_path=tmp_path / "ckpt" / "step=30.ckpt")
    assert trainer.global_step == 45
    by_step = {}
    for record in read_key_log(tmp_path / "keys" / "keys-rank0.jsonl"):
        by_step[record["step"]] = record
    assert sorted(by_step) == list(range(1, 46))
    for epoch in range(3):
        keys = Counter(k for r in by_step.values() if r["epoch"] == epoch for k in r["keys"])
        assert len(keys) == 60 and max(keys.values()) == 1, f"epoch {epoch} not exactly once"


@pytest.mark.parametrize("first,second", [(4, 6), (6, 4)])
def test_resume_with_another_batch_size_finishes_the_epoch_then_follows(make_shards: MakeShards, tmp_path: Path,
                                                                        first: int, second: int) -> None:
    # Elastic: the interrupted epoch ends with its remaining samples in the new batches; the next
    # epoch has the new allocation's length, shorter or longer (Lightning fixes it at setup otherwise).
    shards = make_shards(60, per_shard=10)
    per_epoch = 60 // first
    checkpoints = ModelCheckpoint(tmp_path / "ckpt", filename="{step}", every_n_train_steps=1, save_top_k=-1)
    dm = ShardDataModule(shards, batch_size_per_device=first, num_workers=2, shuffle_buffer=8, seed=5, pin_memory=False)
    with pytest.raises(Crash):
        _trainer(tmp_path, checkpoints, CrashAtStep(per_epoch + 3)).fit(TinyObjective(), dm)
    dm = ShardDataModule(shards, batch_size_per_device=second, num_workers=3, shuffle_buffer=8, seed=5, pin_memory=False)
    trainer = _trainer(tmp_path, max_epochs=3)
    trainer.fit(TinyObjective(), dm, ckpt_path=tmp_path / "ckpt" / f"step={per_epoch + 2}.ckpt")
    records = read_key_log(tmp_path / "keys" / "keys-rank0.jsonl")
    records = records[: per_epoch + 2] + records[per_epoch + 3:]  # the crashed step is lost work
    epoch1 = Counter(k for r in records if r["epoch"] == 1 for k in r["keys"])
    resumed_steps = (60 - 2 * first) // second
    assert max(epoch1.values()) == 1 and len(epoch1) == 2 * first + resumed_steps * second  # each once
    assert 60 - len(epoch1) < second  # "drop": only the new global batch's remainder is dropped
    assert sum(1 for r in records if r["epoch"] == 1) == 2 + resumed_steps
    epoch2 = [r for r in records if r["epoch"] == 2]
    assert len(epoch2) == 60 // second and len({k for r in epoch2 for k in r["keys"]}) == 60 // second * second
    assert trainer.global_step == per_epoch + 2 + resumed_steps + 60 // second


def test_more_workers_than_cores_are_lowered_to_the_cores(make_shards: MakeShards, caplog: pytest.LogCaptureFixture) -> None:
    # A recipe's num_workers 4 on a 2-core machine: torch would warn on every loader; we use the cores.
    from sslkit.hardware import usable_cores

    shards = make_shards(20, per_shard=10)
    with caplog.at_level(logging.INFO, logger="sslkit.data.datamodule"):
        module = ShardDataModule(str(shards), batch_size_per_device=4, num_workers=usable_cores() + 3)
    assert module.num_workers == usable_cores() and "usable CPU cores" in caplog.text
    assert ShardDataModule(str(shards), batch_size_per_device=4, num_workers=1).num_workers == 1
    assert build_eval_loader(str(shards), None, 4, usable_cores() + 3).num_workers == usable_cores()
