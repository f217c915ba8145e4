"""The evaluation preprocessing a published model declares (timm's ``pretrained_cfg`` data fields).

Resolved from, in order: explicit arguments, the preprocessing recorded by an eval result of the run,
the run config's ``eval_transform`` then ``train_transform``, the backbone's own ``img_size``, and
ImageNet defaults. It matches :class:`sslkit.transforms.views.EvalTransform`: bicubic resize of the
shorter side to ``resize``, centre crop ``input_size``, so timm's ``crop_pct = input_size / resize``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD


def default_resize(input_size: int) -> int:
    """:class:`EvalTransform`'s default shorter side: the 224/256 ratio, none at 64 px and below."""
    return input_size if input_size <= 64 else int(input_size * 256 / 224)


def _transform_args(config: dict[str, Any] | None, name: str) -> dict[str, Any]:
    try:
        transform = config["data"]["init_args"][name]  # type: ignore[index]
        return dict(transform.get("init_args") or {}) if isinstance(transform, dict) else {}
    except (KeyError, TypeError):
        return {}


def _result_args(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    for result in results:
        features = result.get("features") or {}
        for split in ("val", "train"):
            pre = (features.get(split) or {}).get("preprocessing")
            if isinstance(pre, dict):
                return pre
    return {}


def _backbone_size(backbone: nn.Module) -> int | None:
    img_size = getattr(getattr(backbone, "patch_embed", None), "img_size", None)
    return int(img_size[0]) if isinstance(img_size, (tuple, list)) else None


def resolve_preprocessing(
    backbone: nn.Module,
    config: dict[str, Any] | None,
    results: Sequence[dict[str, Any]],
    input_size: int | None = None,
    resize: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> dict[str, Any]:
    """``{input_size, resize, crop_pct, interpolation, mean, std, source}`` for the model card and config.

    ``source`` says where the values came from (shown in the card).
    """
    layers = [
        ("command line", {"input_size": input_size, "resize": resize, "mean": mean, "std": std}),
        ("eval result", _result_args(results)),
        ("run config eval_transform", _transform_args(config, "eval_transform")),
        ("run config train_transform", _transform_args(config, "train_transform")),
        ("backbone img_size", {"input_size": _backbone_size(backbone)}),
        ("ImageNet default", {"input_size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}),
    ]
    chosen: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, values in layers:
        for key in ("input_size", "resize", "mean", "std"):
            if key not in chosen and values.get(key) is not None:
                chosen[key], sources[key] = values[key], name
    if sources.get("resize") != sources["input_size"]:
        chosen.pop("resize", None)  # a resize belongs with the crop size it was chosen for
    size = int(chosen["input_size"])
    short_side = int(chosen.get("resize") or default_resize(size))
    return {
        "input_size": size,
        "resize": short_side,
        "crop_pct": size / short_side,
        "interpolation": "bicubic",
        "mean": [float(m) for m in chosen["mean"]],
        "std": [float(s) for s in chosen["std"]],
        "source": sources,
    }
