"""``sslkit.load_pretrained``: a published folder, Hub repository or sslkit checkpoint → a timm model.

Safety: ``SHA256SUMS`` is verified before any weight is read; weights come from ``safetensors``
(no code), and a pickled file (``.bin``, ``.pth``, ``.ckpt``) is only read with
``torch.load(weights_only=True)``, and refused when that fails. ``config.json`` is data too: its
architecture must be a timm registry name and its ``model_args`` plain constructor arguments (no
``pretrained``, hub name, file or URL), checked against timm's constructor and the weights' shapes on
the ``meta`` device before the model is built; loading a local folder never touches the network.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from sslkit.objectives.loading import unreadable_reason
from sslkit.objectives.registry import RefusedInput
from sslkit.publish.checksums import verify_sums
from sslkit.publish.export import Architecture, architecture_from_config, architecture_from_hparams, build_timm_model

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth")
MAX_CONFIG_BYTES = 1 << 20  # a timm config.json is ~1 kB
# ``pretrained_cfg`` keys kept on the model: preprocessing and metadata, never a location to load from
# (``url``, ``hf_hub_id``, ``file``... are dropped; ``file`` is set to the weights just read).
PREPROCESSING_KEYS = (
    "tag", "custom_load", "input_size", "test_input_size", "min_input_size", "fixed_input_size", "interpolation",
    "crop_pct", "test_crop_pct", "crop_mode", "mean", "std", "num_classes", "label_offset", "pool_size",
    "first_conv", "classifier", "license",
)
_REPO_ID = re.compile(r"^(hf-hub:|hf_hub:)?[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file, or a pickle readable with ``weights_only=True``."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch's message advises weights_only=False: never repeat it
        raise RefusedInput(
            f"refusing to load {path}: it is not loadable with weights_only=True ({unreadable_reason(err)}). "
            "sslkit never unpickles arbitrary objects; publish the weights as safetensors."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RefusedInput(f"{path} does not hold a flat tensor state dict")
    return state


def _download(repo: str, revision: str | None) -> Path:
    """A local snapshot of a Hub repository (``owner/name[@revision]``)."""
    from huggingface_hub import snapshot_download

    from sslkit.publish.hub import HubUnreachable, is_connection_error

    repo = repo.split(":", 1)[1] if repo.startswith(("hf-hub:", "hf_hub:")) else repo
    repo, _, at = repo.partition("@")
    try:
        # HF_ENDPOINT read now, not when huggingface_hub was first imported (timm imports it early).
        endpoint = os.environ.get("HF_ENDPOINT") or None
        return Path(snapshot_download(repo, revision=revision or at or None, endpoint=endpoint))
    except Exception as err:  # noqa: BLE001
        if is_connection_error(err):
            raise HubUnreachable(f"could not reach the Hub to download {repo}: {err}") from err
        raise


def read_config(path: Path) -> dict[str, Any]:
    """A published ``config.json`` (a small JSON object), or :class:`RefusedInput`."""
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise RefusedInput(f"{path} is {path.stat().st_size} bytes: not a timm config.json (at most {MAX_CONFIG_BYTES})")
    try:
        config = json.loads(path.read_text())
    except (ValueError, RecursionError) as err:
        raise RefusedInput(f"{path} is not valid JSON ({type(err).__name__}: {str(err)[:80]})") from None
    if not isinstance(config, dict):
        raise RefusedInput(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a ``.safetensors`` file, from its header (no tensor is read)."""
    with safe_open(str(path), framework="pt") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}


def build_checked(arch: Architecture, shapes: dict[str, tuple[int, ...]], where: str, **kwargs: Any) -> nn.Module:
    """Build ``arch`` only once timm has accepted its arguments and its shapes match ``shapes``.

    The check builds the model on the ``meta`` device (no memory, no initialisation), so a
    ``config.json`` claiming 24 blocks for 2 blocks of weights is refused before anything is allocated.
    """
    try:
        with torch.device("meta"):
            probe = build_timm_model(arch, **kwargs)
    except TypeError as err:
        raise RefusedInput(f"{where}: model_args are not all {arch.name} arguments ({err})") from None
    except Exception:  # noqa: BLE001 - an architecture that cannot be built on meta: checked by load_state_dict
        probe = None
    if probe is not None:
        expected = {key: tuple(value.shape) for key, value in probe.state_dict().items()}
        for key in sorted(expected.keys() | shapes.keys()):
            if expected.get(key) != shapes.get(key):
                raise RefusedInput(
                    f"{where}: {arch.name} with model_args {arch.model_args} does not fit the weights: {key} is "
                    f"{expected.get(key, 'absent')} in the model, {shapes.get(key, 'absent')} in the weights"
                )
    return build_timm_model(arch, **kwargs)


def _from_folder(folder: Path, num_classes: int, verify: bool, kwargs: dict[str, Any]) -> nn.Module:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: not a published model folder")
    weights = next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{folder} holds none of {WEIGHT_FILES}")
    if verify:
        verify_sums(folder, required=(config_path.name, weights.name))
    config = read_config(config_path)
    arch = architecture_from_config(config, str(config_path))
    state = None if weights.suffix == ".safetensors" else read_weights(weights)
    shapes = weight_shapes(weights) if state is None else {k: tuple(v.shape) for k, v in state.items()}
    model = build_checked(arch, shapes, str(config_path), **kwargs)
    model.load_state_dict(read_weights(weights) if state is None else state, strict=True)
    pretrained_cfg = {k: v for k, v in (config.get("pretrained_cfg") or {}).items() if k in PREPROCESSING_KEYS}
    pretrained_cfg.update(architecture=arch.name, file=str(weights))
    model.pretrained_cfg = pretrained_cfg
    if num_classes:
        model.reset_classifier(num_classes)
    return model.eval()


def _from_checkpoint(path: Path, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    from sslkit.objectives.loading import load_objective
    from sslkit.publish.export import export_state_dict

    objective = load_objective(path)  # weights-only; refuses anything else
    arch = architecture_from_hparams(dict(objective.hparams))
    model = build_timm_model(arch, **kwargs)
    model.load_state_dict(export_state_dict(objective.eval_backbone()), strict=True)
    if num_classes:
        model.reset_classifier(num_classes)
    return model.eval()


def load_pretrained(
    path_or_repo: str | Path,
    num_classes: int = 0,
    verify: bool = True,
    revision: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A plain timm model with published sslkit weights.

    Args:
        path_or_repo: A folder written by ``sslkit publish``, its ``model.safetensors``, a Hub repository
            id (``owner/name``, ``hf-hub:owner/name``), or an sslkit Lightning checkpoint (``.ckpt``:
            its ``eval_backbone()``).
        num_classes: ``0`` (default): headless, ``model(x)`` is pooled features; else a new classifier.
        verify: Check ``SHA256SUMS`` first (default). Only turn off for folders you made yourself.
        revision: Hub revision (branch, tag or commit).
        **kwargs: Extra ``timm.create_model`` kwargs (e.g. ``dynamic_img_size=True``).

    Raises:
        sslkit.publish.ChecksumError: a file differs from ``SHA256SUMS`` (or is not listed).
        RefusedInput: (a ``ValueError``) a pickled file that ``weights_only=True`` cannot read, a ``config.json``
            naming a hub model, file, URL or ``pretrained``, or whose architecture does not fit the weights.
    """
    path = Path(path_or_repo)
    if path.is_dir():
        return _from_folder(path, num_classes, verify, kwargs)
    if path.is_file():
        if path.suffix == ".safetensors":
            return _from_folder(path.parent, num_classes, verify, kwargs)
        return _from_checkpoint(path, num_classes, kwargs)
    if _REPO_ID.match(str(path_or_repo)) and not str(path_or_repo).startswith((".", "/")):
        return _from_folder(_download(str(path_or_repo), revision), num_classes, verify, kwargs)
    raise FileNotFoundError(f"{path_or_repo}: no such folder or file, and not a Hub repository id")
