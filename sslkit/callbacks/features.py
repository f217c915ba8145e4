"""Where the online monitors get features from, shared by the kNN, probe and RankMe callbacks.

By default a monitor calls ``pl_module.eval_backbone()`` (the backbone evaluation uses: the EMA
teacher for EMA methods, else the student) on the images, under ``no_grad`` and in eval mode, so
the monitor neither builds a graph nor moves BatchNorm statistics; train/eval flags are restored
afterwards. Pass ``feature_fn(pl_module, images) -> (B, D)`` to any monitor to use something else.

On training batches the images are ``batch["views"][0]``. If ``training_step`` returned a dict with
``"feats"`` ``(B, D)``, those are used instead (no extra forward); otherwise the first monitor that
needs them computes them once and stores them in that step's ``outputs`` dict for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

FeatureFn = Callable[[L.LightningModule, torch.Tensor], torch.Tensor]


def backbone_features(pl_module: L.LightningModule, x: torch.Tensor) -> torch.Tensor:
    """``pl_module.eval_backbone()(x)`` ``(B, D)`` in eval mode without a graph; modes restored."""
    backbone: nn.Module = pl_module.eval_backbone()
    modes = {m: m.training for m in backbone.modules()}
    backbone.eval()
    try:
        with torch.no_grad():
            return backbone(x)
    finally:
        for module, training in modes.items():
            module.training = training


def batch_images(batch: dict[str, Any]) -> torch.Tensor:
    """The images of an eval batch (``"image"``) or the first view of a training batch."""
    return batch["image"] if "image" in batch else batch["views"][0]


def training_features(
    pl_module: L.LightningModule, outputs: Any, batch: dict[str, Any], feature_fn: FeatureFn | None
) -> torch.Tensor:
    """Detached float features ``(B, D)`` of a training batch, computed at most once per step."""
    if isinstance(outputs, dict) and "feats" in outputs:
        return outputs["feats"].detach().float()
    feats = (feature_fn or backbone_features)(pl_module, batch_images(batch)).detach().float()
    if isinstance(outputs, dict):
        outputs["feats"] = feats
    return feats
