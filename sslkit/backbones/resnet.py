"""ResNet with a CIFAR stem (He et al. 2016, §4.2): 3×3 stride-1 first conv and no max-pool.

The 7×7/2 conv + 3×3/2 max-pool of the ImageNet stem shrink a 32×32 image to 8×8 before the first
stage; SimCLR, solo-learn and lightly's CIFAR benchmarks all swap them as done here.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import Tensor, nn


def _to_channels_last(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])


def set_channels_last(model: nn.Module) -> nn.Module:
    """Store weights and convert inputs to channels-last (NHWC), the faster conv layout for
    oneDNN on CPU and cuDNN tensor cores; values are unchanged. Returns ``model``."""
    model.to(memory_format=torch.channels_last)
    model.register_forward_pre_hook(_to_channels_last)
    return model


def resnet18_cifar(channels_last: bool = True, **kwargs: Any) -> nn.Module:
    """timm ``resnet18`` (``num_classes=0``) with the CIFAR stem.

    State-dict keys are timm's ``resnet18`` ones; only ``conv1.weight`` has shape
    ``(64, in_chans, 3, 3)`` instead of ``(64, in_chans, 7, 7)``, so to publish, rebuild
    ``timm.create_model("resnet18", num_classes=0)`` and apply the same stem swap before loading.

    Args:
        channels_last: See :func:`set_channels_last`.
        **kwargs: ``timm.create_model`` arguments (``in_chans``, ``drop_path_rate``, ...).
    """
    model = timm.create_model("resnet18", num_classes=0, **kwargs)
    model.conv1 = nn.Conv2d(model.conv1.in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return set_channels_last(model) if channels_last else model
