"""A run over a truncated shard and an undecodable image goes on, and the trainer logs the counts."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger

from sslkit.callbacks.data_health import DataHealth
from sslkit.data import ImageSource, ShardDataModule, open_source, write_shards
from sslkit.objectives import SimCLR
from sslkit.transforms import SimCLRViews
from tests.data.helpers import rewrite_shard


def _corrupt_digit_shards(out: Path) -> None:
    source = open_source("digits", split="train", size=32)
    samples = [s for _, s in zip(range(48), source)]
    write_shards(ImageSource(source.name, source.class_names, 48, lambda: iter(samples)), out, prefix="d",
                 max_samples_per_shard=16, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    truncated = out / manifest["shards"][0]["name"]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    # Rewrite shard 2 with one sample whose image bytes are junk.
    import io

    rewritten = []
    for i, (key, image, label) in enumerate(samples[32:]):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        rewritten.append((key, "png", b"\x89PNG but not really" if i == 3 else buffer.getvalue(), label))
    rewrite_shard(out, 2, rewritten)


def test_corrupt_data_is_skipped_counted_and_logged_during_fit(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    _corrupt_digit_shards(shards)
    torch.manual_seed(0)
    model = SimCLR(backbone="vit_tiny_patch16_224",
                   backbone_kwargs={"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 48, "num_heads": 3},
                   proj_hidden_dim=32, proj_output_dim=16, warmup_epochs=0)
    dm = ShardDataModule(shards, batch_size_per_device=8, num_workers=1, train_transform=SimCLRViews(32, blur_prob=0),
                         shuffle_buffer=8, persistent_workers=False, pin_memory=False)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=CSVLogger(tmp_path, name="", version=""),
                        callbacks=[DataHealth(every_n_steps=1)], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == len(dm.train_dataloader()) == 48 // 8  # every batch kept full by the stream
    metrics = trainer.logged_metrics
    assert metrics["data/corrupt_shards"] >= 1
    assert metrics["data/skipped_samples"] >= 1  # the junk image (the cut shard counts as corrupt)
    logged = (tmp_path / "metrics.csv").read_text()
    assert "data/skipped_samples" in logged
