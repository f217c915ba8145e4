"""Shared pieces of the smoke tests of the methods of issue #16 (tiny ViT, multi-crop views)."""

from __future__ import annotations

import torch
from torch import nn

from sslkit.transforms import MultiCropViews, SimCLRViews
from tests.conftest import TINY_VIT

TINY_VIT_DYNAMIC = {**TINY_VIT, "dynamic_img_size": True}  # 16-px local crops


def multicrop_views(num_local: int = 2) -> MultiCropViews:
    return MultiCropViews(global_crop_size=32, local_crop_size=16, num_local_views=num_local, blur_probs=(0.0, 0.0, 0.0))


def two_views() -> SimCLRViews:
    return SimCLRViews(input_size=32, blur_prob=0.0)


def snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(before: list[torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def record_input_sizes(module: nn.Module) -> list[tuple[int, ...]]:
    """Shapes of every batch ``module`` is called on (one entry per forward call)."""
    calls: list[tuple[int, ...]] = []
    module.register_forward_pre_hook(lambda _, args: calls.append(tuple(args[0].shape)))
    return calls
