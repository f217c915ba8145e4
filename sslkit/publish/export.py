"""A trained backbone as plain timm sees it: architecture name, constructor kwargs, state dict, config.json.

sslkit backbones keep timm's state-dict keys (``sslkit.backbones``), so the mapping is the identity
up to wrappers (``torch.compile``'s ``_orig_mod.``) and memory layout (channels-last → contiguous).
The one architecture plain ``timm.create_model`` cannot build is ``resnet18_cifar``: timm's ``ResNet``
stem is either one 7×7 stride-2 conv (``stem_type=""``) or three 3×3 convs whose first has stride 2
(``"deep"``, ``"deep_tiered"``), always followed by a stride-2 max-pool (or, with
``replace_stem_pool``, a stride-2 conv); no kwarg gives a single 3×3 stride-1 conv without pooling.
Its weights are published as timm ``resnet18`` keys with a ``(64, C, 3, 3)`` ``conv1.weight``, and
``config.json`` says ``"sslkit": {"stem": "cifar"}``; :func:`build_timm_model` applies the same
two-line stem swap the model card shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import timm
import torch
from torch import nn

from sslkit.backbones.vit import SSLKIT_VIT_KWARGS
from sslkit.objectives.registry import LOADING_MODEL_ARGS, RefusedInput, check_architecture

# create_backbone switches that change speed or memory layout, never the function or the weights.
# Neither kind is written to config.json; LOADING_MODEL_ARGS are refused when a config.json sets them.
_RUNTIME_KWARGS = (*SSLKIT_VIT_KWARGS, "channels_last", *LOADING_MODEL_ARGS)
_CIFAR_STEM = {"resnet18_cifar": "resnet18"}
_STEMS = (None, "cifar")
_DEFAULT_ROUNDTRIP_ATOL = 1e-5


@dataclass(frozen=True)
class Architecture:
    """How plain timm rebuilds a published backbone.

    Attributes:
        name: timm architecture (``vit_tiny_patch16_224``, ``resnet18``...).
        model_args: JSON-able kwargs for ``timm.create_model`` besides ``num_classes``.
        stem: ``"cifar"`` when the first conv is 3×3 stride 1 without max-pool, else ``None``.
        source: the name the objective gave ``create_backbone``.
    """

    name: str
    model_args: dict[str, Any] = field(default_factory=dict)
    stem: str | None = None
    source: str = ""


def architecture_from_hparams(hparams: dict[str, Any]) -> Architecture:
    """The timm architecture of an objective's ``backbone`` / ``backbone_kwargs`` hyper-parameters."""
    source = hparams.get("backbone")
    if not isinstance(source, str):
        raise ValueError(f"the checkpoint's hyper_parameters name no backbone (got {source!r})")
    kwargs = dict(hparams.get("backbone_kwargs") or {})
    model_args = {
        k: v for k, v in kwargs.items()
        if k not in _RUNTIME_KWARGS and k not in ("drop_rate", "drop_path_rate", "drop_block_rate")
        and not k.endswith("_drop_rate")
    }
    if source in _CIFAR_STEM:
        return Architecture(_CIFAR_STEM[source], model_args, "cifar", source)
    return Architecture(source, model_args, None, source)


def build_timm_model(arch: Architecture, num_classes: int = 0, **overrides: Any) -> nn.Module:
    """Plain ``timm.create_model(arch.name, num_classes=..., **arch.model_args)``, stem swapped if needed.

    Args:
        arch: What to build.
        num_classes: Classifier outputs (``0``: headless, pooled features).
        **overrides: Extra ``timm.create_model`` kwargs (win over ``arch.model_args``).
    """
    kwargs = {**arch.model_args, **overrides, "num_classes": num_classes}
    model = timm.create_model(arch.name, **kwargs)
    if arch.stem == "cifar":
        # The same swap as sslkit.backbones.resnet.resnet18_cifar, without its channels-last hook.
        model.conv1 = nn.Conv2d(model.conv1.in_channels, model.conv1.out_channels, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif arch.stem is not None:
        raise ValueError(f"unknown stem {arch.stem!r}")
    return model


def export_state_dict(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """timm-keyed, contiguous CPU tensors of ``backbone`` (what ``model.safetensors`` holds)."""
    state: dict[str, torch.Tensor] = {}
    for key, value in backbone.state_dict().items():
        name = key.replace("_orig_mod.", "")  # torch.compile wrappers
        if name in state:
            raise ValueError(f"two parameters map to the timm key {name!r}")
        state[name] = value.detach().to("cpu").contiguous().clone()
    return state


@torch.no_grad()
def check_roundtrip(
    backbone: nn.Module, arch: Architecture, state: dict[str, torch.Tensor], input_size: tuple[int, int, int],
    atol: float = _DEFAULT_ROUNDTRIP_ATOL,
) -> float:
    """Load ``state`` into plain timm (strict) and compare pooled features on a random batch.

    Returns:
        The max abs difference; raises ``ValueError`` above ``atol``.
    """
    plain = build_timm_model(arch)
    plain.load_state_dict(state, strict=True)
    x = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0))
    was_training = backbone.training
    try:
        ours, theirs = backbone.eval()(x).float(), plain.eval()(x).float()
    finally:
        backbone.train(was_training)
    diff = float((ours - theirs).abs().max())
    if ours.shape != theirs.shape or not diff <= atol:
        raise ValueError(
            f"plain timm {arch.name} with {arch.model_args} does not reproduce the trained backbone "
            f"(shapes {tuple(ours.shape)} vs {tuple(theirs.shape)}, max abs diff {diff:.3g} > {atol:g})"
        )
    return diff


def hub_config(
    backbone: nn.Module, arch: Architecture, preprocessing: dict[str, Any], license_id: str,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """``config.json`` in timm's hub layout (what ``timm.create_model("hf-hub:...")`` reads).

    Args:
        backbone: The exported backbone (for ``num_features``, pooling, default ``pretrained_cfg``).
        arch: Its plain-timm architecture.
        preprocessing: ``input_size`` (int), ``crop_pct``, ``interpolation``, ``mean``, ``std``.
        license_id: SPDX-style license of the weights.
        provenance: The ``sslkit`` section (objective, which backbone, stem, versions).
    """
    default = dict(getattr(backbone, "pretrained_cfg", None) or {})
    size = int(preprocessing["input_size"])
    fixed = bool(default.get("fixed_input_size", False)) and not arch.model_args.get("dynamic_img_size", False)
    pretrained_cfg = {
        "tag": "sslkit",
        "custom_load": False,
        "input_size": [int(arch.model_args.get("in_chans", 3)), size, size],
        "fixed_input_size": fixed,
        "interpolation": preprocessing.get("interpolation", "bicubic"),
        "crop_pct": float(preprocessing["crop_pct"]),
        "crop_mode": "center",
        "mean": [float(m) for m in preprocessing["mean"]],
        "std": [float(s) for s in preprocessing["std"]],
        "num_classes": 0,
        "pool_size": None,
        "first_conv": default.get("first_conv", "conv1"),
        "classifier": default.get("classifier", "head"),
        "license": license_id,
    }
    pool = getattr(backbone, "global_pool", None)
    pool = getattr(pool, "pool_type", pool)
    config: dict[str, Any] = {
        "architecture": arch.name,
        "num_classes": 0,
        "num_features": int(backbone.num_features),
    }
    if isinstance(pool, str) and pool:
        config["global_pool"] = pool
    config["model_args"] = {**arch.model_args, "num_classes": 0}
    config["pretrained_cfg"] = pretrained_cfg
    config["sslkit"] = {**provenance, "stem": arch.stem, "source_backbone": arch.source}
    return config


def architecture_from_config(config: dict[str, Any], where: str = "config.json") -> Architecture:
    """The :class:`Architecture` a published ``config.json`` describes, refused unless it is a plain local build.

    ``architecture`` must be a timm registry name (no ``hf-hub:``/``timm/`` name, path or URL) and
    ``model_args`` plain architecture arguments: no ``pretrained``, ``pretrained_cfg(_overlay)``,
    ``checkpoint_path``..., no string that names a file, URL or hub repository
    (:func:`sslkit.objectives.registry.check_architecture`). Whether timm's constructor takes each
    argument is checked by :func:`sslkit.publish.loading.build_checked`, before any weight is allocated.

    Raises:
        RefusedInput: naming the key and value refused.
    """
    if not isinstance(config, dict):
        raise RefusedInput(f"{where} must hold a JSON object, got {type(config).__name__}")
    model_args = config.get("model_args") or {}
    check_architecture(config.get("architecture"), model_args, f"{where}: architecture", f"{where}: model_args")
    model_args = {k: v for k, v in model_args.items() if k != "num_classes"}
    ours = config.get("sslkit") or {}
    stem = ours.get("stem") if isinstance(ours, dict) else None
    if stem not in _STEMS:
        raise RefusedInput(f"{where}: sslkit.stem = {stem!r} is not one of {list(_STEMS)}")
    return Architecture(config["architecture"], model_args, stem, str(ours.get("source_backbone", "")))
