"""Default sample transform and collator for the batch contract in ``docs/design.md``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor ``(3, H, W)`` in ``[0, 1]`` (the eval transform when none is given)."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def single_view(image: Image.Image) -> list[torch.Tensor]:
    """A view transform with one un-augmented view (the train transform when none is given)."""
    return [pil_to_tensor(image)]


def collate_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a training or eval batch.

    Args:
        samples: dicts with ``"views"`` (list of ``(C, H, W)`` tensors) or ``"image"`` (``(C, H, W)``),
            plus ``"label"`` (int, -1 when unknown) and ``"key"`` (str).

    Returns:
        ``{"views": [(B, C, H, W), ...]}`` or ``{"image": (B, C, H, W)}``, plus ``"label"``
        (LongTensor ``(B,)``) and ``"key"`` (list of B str).
    """
    batch: dict[str, Any] = {}
    if "views" in samples[0]:
        num_views = len(samples[0]["views"])
        batch["views"] = [torch.stack([s["views"][v] for s in samples]) for v in range(num_views)]
    else:
        batch["image"] = torch.stack([s["image"] for s in samples])
    batch["label"] = torch.tensor([s["label"] for s in samples], dtype=torch.long)
    batch["key"] = [s["key"] for s in samples]
    return batch
