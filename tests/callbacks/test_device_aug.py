"""DeviceAugmentation in a real CPU fit: workers emit uint8, the objective receives float views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from sslkit.callbacks.device_aug import DeviceAugmentation
from sslkit.data import ImageSource, ShardDataModule, open_source, write_shards
from sslkit.objectives import SimCLR
from sslkit.transforms.gpu import BatchViews, UInt8Image


class RecordingSimCLR(SimCLR):
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self.seen = [(v.dtype, tuple(v.shape)) for v in batch["views"]]
        self.keys = list(batch["key"])
        return super().training_step(batch, batch_idx)


def _shards(out: Path) -> Path:
    source = open_source("digits", split="train", size=32)
    samples = [s for _, s in zip(range(32), source)]
    write_shards(ImageSource(source.name, source.class_names, 32, lambda: iter(samples)), out, prefix="d",
                 max_samples_per_shard=16, progress=False)
    return out


def test_device_augmentation_fit(tmp_path: Path) -> None:
    dm = ShardDataModule(_shards(tmp_path / "shards"), batch_size_per_device=8, num_workers=0,
                         train_transform=UInt8Image(), shuffle_buffer=8, persistent_workers=False, pin_memory=False)
    model = RecordingSimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs={"img_size": 16, "patch_size": 4, "depth": 2},
                            proj_hidden_dim=32, proj_output_dim=16, warmup_epochs=0)
    aug = DeviceAugmentation(BatchViews(input_size=16, num_views=2, min_scale=0.2, blur_prob=0.0))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=2, max_epochs=1, logger=False, callbacks=[aug],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    assert model.seen == [(torch.float32, (8, 3, 16, 16))] * 2
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert dm.state_dict()["batches_consumed"] == 2  # the DataModule's count is untouched


def test_per_step_generator_is_deterministic() -> None:
    aug = DeviceAugmentation(BatchViews(input_size=8), seed=3)
    a, b, c = aug.generator(5, 0), aug.generator(5, 0), aug.generator(6, 0)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(torch.rand(4, generator=aug.generator(5, 0)), torch.rand(4, generator=c))
