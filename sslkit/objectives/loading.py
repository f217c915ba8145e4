"""Rebuild an objective from a Lightning checkpoint without unpickling anything."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from sslkit.objectives.base import SSLObjective

_ALLOWED_PREFIX = "sslkit.objectives."


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary objects."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{path} is a directory (a DeepSpeed checkpoint?): convert it first with "
            "`python -m sslkit.distributed.zero DIR OUT.ckpt` (or `sslkit publish DIR`, which converts it)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the reason users need
        raise ValueError(
            f"refusing to load {path}: it is not a weights-only checkpoint ({err}). sslkit never "
            "unpickles arbitrary objects; re-save it with tensors and plain types only."
        ) from err


def load_objective(path: str | Path, strict: bool = True) -> SSLObjective:
    """Rebuild the objective stored in an sslkit Lightning checkpoint.

    The class comes from the checkpoint's ``sslkit_objective`` entry and must live under
    ``sslkit.objectives``; its constructor arguments from ``hyper_parameters``.
    """
    ckpt = read_checkpoint(path)
    class_path = ckpt.get("sslkit_objective")
    if not class_path or not class_path.startswith(_ALLOWED_PREFIX):
        raise ValueError(f"{path} is not an sslkit objective checkpoint (objective class: {class_path!r})")
    module_name, _, class_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    hparams = dict(ckpt.get("hyper_parameters", {}))
    hparams.pop("_instantiator", None)
    hparams.pop("_class_path", None)
    model = cls(**hparams)
    model.load_state_dict(ckpt["state_dict"], strict=strict)
    return model.eval()
