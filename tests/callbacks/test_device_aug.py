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


def test_multi_crop_on_the_device() -> None:
    """Several BatchViews concatenate in order (DINO: 2 global + local crops), local crops within their scale."""
    global_views = BatchViews(input_size=16, num_views=2, min_scale=0.4, blur_prob=(1.0, 0.1), solarize_prob=(0.0, 0.2))
    local_views = BatchViews(input_size=8, num_views=3, min_scale=0.05, max_scale=0.4, blur_prob=0.5)
    aug = DeviceAugmentation([global_views, local_views])
    batch = {"views": [torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)]}
    trainer = type("T", (), {"global_step": 0, "global_rank": 0})()
    aug.on_train_batch_start(trainer, None, batch, 0)
    assert [tuple(v.shape) for v in batch["views"]] == [(4, 3, 16, 16)] * 2 + [(4, 3, 8, 8)] * 3
    crops = local_views.sample(1000, 32, 32, torch.Generator().manual_seed(0)).crop
    area = (crops[:, 2] * crops[:, 3]).double() / (32 * 32)
    assert area.max() <= 0.4 + 0.05 and area.min() >= 0.05 - 0.02  # rounding of h, w to whole pixels
    assert area.mean() < 0.3  # the (0.05, 0.4) range, not (0.05, 1)
