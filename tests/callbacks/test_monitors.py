"""Online monitors in a real (tiny) Trainer.fit on CPU: they log, learn, and leave the objective alone."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sslkit.callbacks import OnlineKNN, OnlineLinearProbe, RankMeMonitor
from sslkit.callbacks.features import backbone_features

NUM_CLASSES = 4


class ColourDataset(Dataset):
    """Noisy 16x16 images whose class is their mean colour: separable through any sane backbone."""

    def __init__(self, num: int, seed: int, train: bool, unlabelled_every: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, NUM_CLASSES, (num,), generator=g)
        palette = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]])
        self.images = palette[self.labels][:, :, None, None] + 0.3 * torch.randn(num, 3, 16, 16, generator=g)
        self.train, self.unlabelled_every = train, unlabelled_every

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        label = -1 if self.unlabelled_every and i % self.unlabelled_every == 0 else int(self.labels[i])
        image = {"views": [self.images[i]]} if self.train else {"image": self.images[i]}
        return {**image, "label": label, "key": f"{i:05d}"}


class FrozenObjective(L.LightningModule):
    """An objective whose own loss never changes the backbone: anything that does is a leak."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )

    def eval_backbone(self) -> nn.Module:
        return self.backbone

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return sum(p.sum() for p in self.parameters()) * 0.0

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(num: int, seed: int, train: bool, **kw) -> DataLoader:
    return DataLoader(ColourDataset(num, seed, train, **kw), batch_size=32, shuffle=train)


def test_monitors_in_a_real_fit(tmp_path):
    torch.manual_seed(0)
    model = FrozenObjective()
    before = copy.deepcopy(model.backbone.state_dict())
    probe = OnlineLinearProbe(NUM_CLASSES, lr=0.05)
    callbacks = [
        OnlineKNN(loader(256, 1, False), loader(128, 2, False), ks=(20, 5), temps=(0.07, 0.1)),
        probe,
        RankMeMonitor(num_samples=200),
    ]
    trainer = L.Trainer(
        max_epochs=3, accelerator="cpu", devices=1, callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=1,
    )
    trainer.fit(model, loader(320, 3, True, unlabelled_every=5), loader(128, 4, False))
    metrics = trainer.callback_metrics
    assert metrics["val/knn_top1"] > 90.0 and metrics["val/knn_top5"] == 100.0
    assert {"val/knn_k5_t0.1_top1", "val/knn_k20_t0.07_top1"} <= set(metrics)
    assert metrics["val/probe_top1"] > 80.0 and "train/probe_loss" in metrics
    assert 1.0 <= metrics["train/rankme"] <= 32.0
    # The probe never touched the backbone: weights and BatchNorm statistics are unchanged,
    # and the objective's optimizer does not hold the probe's parameters.
    for name, tensor in model.backbone.state_dict().items():
        torch.testing.assert_close(tensor, before[name], msg=name)
    assert model.backbone.training  # train mode restored after the monitors' eval-mode forwards
    optimizer_params = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert not optimizer_params & {id(p) for p in probe.head.parameters()}


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_probe_state_survives_a_checkpoint_round_trip():
    model = FrozenObjective()
    probe = OnlineLinearProbe(NUM_CLASSES)
    batch = next(iter(loader(32, 5, True)))
    probe.on_train_batch_end(_StubTrainer(), model, {"loss": torch.tensor(0.0)}, batch, 0)
    restored = OnlineLinearProbe(NUM_CLASSES)
    restored.load_state_dict(probe.state_dict())
    feats = backbone_features(model, batch["views"][0])
    head = restored._ensure_head(feats.shape[1], feats.device)
    torch.testing.assert_close(head(feats), probe.head(feats))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_unlabelled_batches_are_skipped_and_objective_feats_are_reused():
    model = FrozenObjective()
    probe = OnlineLinearProbe(NUM_CLASSES)
    batch = {"views": [torch.randn(4, 3, 16, 16)], "label": torch.full((4,), -1)}
    probe.on_train_batch_end(_StubTrainer(), model, {"loss": torch.tensor(0.0)}, batch, 0)
    assert probe.head is None
    feats = torch.randn(4, 7)  # not what the backbone would give (32 wide): proves they are used
    batch["label"] = torch.tensor([0, 1, -1, 3])
    probe.on_train_batch_end(_StubTrainer(), model, {"loss": torch.tensor(0.0), "feats": feats}, batch, 0)
    assert probe.head.in_features == 7


class _StubTrainer:
    world_size = 1
