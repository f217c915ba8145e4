"""``create_backbone``: the one entry point objectives use to build a backbone."""

from __future__ import annotations

from typing import Any

import timm
from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer
from torch import nn

from sslkit.backbones.resnet import resnet18_cifar, set_channels_last
from sslkit.backbones.vit import SSLKIT_VIT_KWARGS, VisionTransformer


def timm_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``create_backbone`` kwargs that plain ``timm.create_model`` understands.

    ``timm.create_model(name, num_classes=0, **timm_kwargs(kwargs))`` rebuilds a ViT made by
    ``create_backbone(name, **kwargs)`` with identical state-dict keys and features.
    """
    return {k: v for k, v in kwargs.items() if k not in SSLKIT_VIT_KWARGS}


def create_backbone(name: str, **kwargs: Any) -> nn.Module:
    """Build a headless (``num_classes=0``) backbone following timm's contract.

    - a timm name that builds timm's ``VisionTransformer`` (``vit_tiny_patch16_224``,
      ``vit_small_patch16_224``, ``vit_base_patch16_224``, ...) → :class:`VisionTransformer`,
      built by timm from the same name and kwargs (``img_size``, ``patch_size``, ``reg_tokens``,
      ``depth``, ``dynamic_img_size``, ``pretrained`` ...), plus sslkit's switches
      ``local_window``, ``varlen``, ``attn_impl``, ``grad_checkpointing``, ``compile``;
    - ``resnet18_cifar`` → timm ``resnet18`` with a CIFAR stem (``channels_last=True`` default);
    - anything else → ``timm.create_model(name, num_classes=0, **kwargs)``, honouring
      ``grad_checkpointing``, ``compile`` and ``channels_last``.

    Args:
        name: timm architecture name, or ``resnet18_cifar``.
        **kwargs: Architecture kwargs, as timm's registered function takes them.
    """
    if name == "resnet18_cifar":
        return _switches(resnet18_cifar(**timm_kwargs(kwargs)), kwargs)
    channels_last = kwargs.pop("channels_last", False)
    model = timm.create_model(name, num_classes=0, **timm_kwargs(kwargs))
    if type(model) is TimmVisionTransformer:
        options = {k: kwargs[k] for k in SSLKIT_VIT_KWARGS if k in kwargs}
        return VisionTransformer.from_timm(model, **options)
    if any(k in kwargs for k in SSLKIT_VIT_KWARGS if k not in ("grad_checkpointing", "compile")):
        raise TypeError(f"{name} is not a timm VisionTransformer; ViT-only options given: {sorted(kwargs)}")
    model = set_channels_last(model) if channels_last else model
    return _switches(model, kwargs)


def _switches(model: nn.Module, kwargs: dict[str, Any]) -> nn.Module:
    if kwargs.get("grad_checkpointing"):
        model.set_grad_checkpointing(True)
    if kwargs.get("compile"):
        model.compile()
    return model
