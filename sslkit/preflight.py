"""What ``sslkit pretrain`` checks and records before training starts, from the validated config.

The CLI is the one place a whole config lives: these functions take the parsed (jsonargparse) config
sections the CLI hands them and return plain values: the run record, and a :class:`UserError` for a
recipe that cannot work (a batch larger than the data, a collator and a backbone that disagree on
image or patch size) before any worker starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sslkit.errors import UserError
from sslkit.run_record import Budget, Preprocessing, RunRecord, dataset_from_manifest, default_resize

BATCH_KEY = "data.init_args.batch_size_per_device"
MANIFEST_NAME = "manifest.json"


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if node is None:
            return None
        node = node.get(key) if isinstance(node, Mapping) or hasattr(node, "get") else getattr(node, key, None)
    return node


def check_sizes(model: Any, data: Any) -> None:
    """The backbone, the collator and the views must agree on image and patch size (one line if not)."""
    backbone = _get(model, "init_args", "backbone_kwargs") or {}
    collate = _get(data, "init_args", "collate_fn", "init_args") or {}
    views = _get(data, "init_args", "train_transform", "init_args") or {}
    pairs = [
        ("image size", "model.init_args.backbone_kwargs.img_size", backbone.get("img_size"),
         "data.init_args.collate_fn.init_args.input_size", collate.get("input_size")),
        ("patch size", "model.init_args.backbone_kwargs.patch_size", backbone.get("patch_size"),
         "data.init_args.collate_fn.init_args.patch_size", collate.get("patch_size")),
        ("image size", "data.init_args.collate_fn.init_args.input_size", collate.get("input_size"),
         "data.init_args.train_transform.init_args.input_size", views.get("input_size")),
    ]
    for what, key_a, a, key_b, b in pairs:
        if a is not None and b is not None and a != b:
            raise UserError(f"{what} disagrees: {key_a}={a} but {key_b}={b}; set both to the same value")


def check_shards(spec: Any, key: str) -> None:
    """A local shard folder named by ``key`` must exist and hold a ``manifest.json`` (one line if not)."""
    items = [spec] if isinstance(spec, (str, Path)) else list(spec or [])
    for item in map(str, items):
        if "://" in item or "{" in item or item.endswith((".tar", ".json")) and Path(item).exists():
            continue
        path = Path(item)
        if not path.exists():
            raise UserError(f"{key}: {item} does not exist; write shards there with `sslkit data shard "
                            f"--source ... --out {item}` or point {key} at a shard folder")
        if path.is_dir() and not (path / MANIFEST_NAME).is_file():
            raise UserError(f"{key}: {item} has no {MANIFEST_NAME} (not a folder written by `sslkit data shard`); "
                            f"point {key} at a shard folder, its manifest.json, or a pattern (DIR/train-{{000000..000009}}.tar)")


def check_data(data: Any, world_size: int) -> None:
    """Shard folders exist and the batch fits the data."""
    init = _get(data, "init_args") or {}
    for name in ("train_shards", "val_shards"):
        if init.get(name):
            check_shards(init[name], f"data.init_args.{name}")
    check_batch(data, world_size)


def check_batch(data: Any, world_size: int) -> None:
    """A batch per device larger than the training set gives zero steps: say which key to change."""
    init = _get(data, "init_args") or {}
    per_device, shards = init.get("batch_size_per_device"), init.get("train_shards")
    dataset = dataset_from_manifest(shards) if shards else None
    if not (dataset and dataset.num_samples and per_device):
        return
    per_rank = dataset.num_samples // max(1, world_size)
    if per_device > per_rank and init.get("remainder", "drop") == "drop":
        raise UserError(
            f"{BATCH_KEY}={per_device} is larger than the {dataset.num_samples} training samples of {shards} "
            f"({per_rank} per device over {world_size}): no full batch, no step; set {BATCH_KEY}={per_rank} or less"
        )


def preprocessing_of(data: Any) -> Preprocessing | None:
    """The evaluation preprocessing a recipe states: its ``eval_transform``, else its training views' size
    and normalisation."""
    init = _get(data, "init_args") or {}
    for name in ("eval_transform", "train_transform"):
        args = _get(init, name, "init_args") or {}
        if args.get("mean") is not None and args.get("input_size") is not None:
            size = int(args["input_size"])
            resize = args.get("resize") if name == "eval_transform" else None
            return Preprocessing(size, int(resize or default_resize(size)), tuple(args["mean"]), tuple(args["std"]))
    return None


def run_record(model: Any, data: Any, recipes: list[str], run_dir: str) -> RunRecord:
    """What the run is, before it starts (the trainer completes the budget)."""
    init = _get(data, "init_args") or {}
    return RunRecord(
        objective=str(_get(model, "class_path") or ""),
        recipes=list(recipes),
        run_dir=run_dir,
        train=dataset_from_manifest(init.get("train_shards")),
        val=dataset_from_manifest(init.get("val_shards")),
        budget=Budget(batch_size_per_device=init.get("batch_size_per_device")),
        preprocessing=preprocessing_of(data),
    )
