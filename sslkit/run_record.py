"""The run record: what a training run was (dataset, budget, devices, preprocessing), typed and small.

Written by the training run (:class:`sslkit.callbacks.run_record.RunRecorder`) into every checkpoint
(``checkpoint["sslkit_run"]``, plain types, so weights-only loading reads it) and as ``run.json`` in the
run folder. Evaluation and publishing read it instead of reaching into a config with string paths, and
:func:`resolve_preprocessing` is the one place where their preprocessing is decided.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD

CHECKPOINT_KEY = "sslkit_run"
RUN_FILE = "run.json"


def default_resize(input_size: int) -> int:
    """:class:`~sslkit.transforms.EvalTransform`'s default shorter side: the 256/224 ratio, none at <= 64 px."""
    return input_size if input_size <= 64 else int(input_size * 256 / 224)


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation preprocessing: bicubic resize of the shorter side, centre crop, normalise."""

    input_size: int
    resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bicubic"

    def transform(self) -> Any:
        """The :class:`~sslkit.transforms.EvalTransform` that applies it."""
        from sslkit.transforms.views import EvalTransform

        return EvalTransform(self.input_size, self.resize, self.mean, self.std)

    def as_dict(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "resize": self.resize, "mean": list(self.mean),
                "std": list(self.std), "interpolation": self.interpolation}


@dataclass(frozen=True)
class Dataset:
    """A shard set as its ``manifest.json`` describes it."""

    shards: str
    source: str | None = None
    num_samples: int | None = None
    class_names: tuple[str, ...] | None = None
    image_size: tuple[int, ...] | None = None

    @property
    def name(self) -> str | None:
        """The dataset's name: the manifest ``source`` before its split (``cifar10:train`` -> ``cifar10``)."""
        return self.source.split(":")[0] if self.source else None


@dataclass
class Budget:
    """What the run was given and how far it got (trainer state at the checkpoint)."""

    batch_size_per_device: int | None = None
    world_size: int | None = None
    num_nodes: int | None = None
    accumulate_grad_batches: int = 1
    max_epochs: int | None = None
    max_steps: int | None = None
    precision: str | None = None
    global_step: int | None = None
    steps_per_epoch: int | None = None

    @property
    def global_batch_size(self) -> int | None:
        if self.batch_size_per_device and self.world_size:
            return self.batch_size_per_device * self.world_size * self.accumulate_grad_batches
        return None

    @property
    def epochs_completed(self) -> float | None:
        """Optimizer steps over steps per epoch (0.013 after 20 of 1,562 steps, not "1")."""
        if self.global_step is None or not self.steps_per_epoch:
            return None
        return self.global_step * self.accumulate_grad_batches / self.steps_per_epoch


@dataclass
class RunRecord:
    """One training run. ``recipes``: the names or paths given to ``-c``, in order."""

    objective: str
    recipes: list[str] = field(default_factory=list)
    run_dir: str | None = None
    train: Dataset | None = None
    val: Dataset | None = None
    budget: Budget = field(default_factory=Budget)
    preprocessing: Preprocessing | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (weights-only ``torch.load`` and JSON both read it)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        def build(kind: type, value: Any) -> Any:
            if not isinstance(value, dict):
                return None
            known = {f.name for f in fields(kind)}
            args = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items() if k in known}
            return kind(**args)

        return cls(
            objective=str(data.get("objective", "")),
            recipes=list(data.get("recipes") or []),
            run_dir=data.get("run_dir"),
            train=build(Dataset, data.get("train")),
            val=build(Dataset, data.get("val")),
            budget=build(Budget, data.get("budget")) or Budget(),
            preprocessing=build(Preprocessing, data.get("preprocessing")),
        )

    def write(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / RUN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def from_checkpoint(raw: dict[str, Any]) -> RunRecord | None:
    """The record a checkpoint carries, or ``None`` (checkpoints written before run records existed)."""
    data = raw.get(CHECKPOINT_KEY)
    return RunRecord.from_dict(data) if isinstance(data, dict) else None


def dataset_from_manifest(spec: str | Sequence[str] | None) -> Dataset | None:
    """The :class:`Dataset` of a shard spec whose folder (or first item's folder) holds a manifest."""
    if not spec:
        return None
    first = str(spec if isinstance(spec, (str, Path)) else spec[0])
    path = Path(first)
    manifest = path / "manifest.json" if path.is_dir() else (path if path.suffix == ".json" else path.parent / "manifest.json")
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return Dataset(shards=str(spec))
    size = data.get("image_size")
    names = data.get("class_names")
    return Dataset(shards=str(spec), source=data.get("source"), num_samples=data.get("num_samples"),
                   class_names=tuple(names) if names else None, image_size=tuple(size) if size else None)


def resolve_preprocessing(
    record: RunRecord | None,
    backbone_img_size: int | None = None,
    input_size: int | None = None,
    resize: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> tuple[Preprocessing, dict[str, str]]:
    """The evaluation preprocessing and where each value came from; used by ``eval`` and ``publish`` alike.

    Order: explicit arguments (command-line flags), the checkpoint's run record, the backbone's
    ``img_size``, ImageNet defaults. A ``resize`` is kept only with the crop size it was chosen for.
    """
    run = record.preprocessing if record else None
    layers = [
        ("command line", {"input_size": input_size, "resize": resize, "mean": mean, "std": std}),
        ("run record", run.as_dict() if run else {}),
        ("backbone img_size", {"input_size": backbone_img_size}),
        ("ImageNet default", {"input_size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}),
    ]
    chosen: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, values in layers:
        for key in ("input_size", "resize", "mean", "std"):
            if key not in chosen and values.get(key) is not None:
                chosen[key], sources[key] = values[key], name
    if "resize" in chosen and sources["resize"] != sources["input_size"]:
        del chosen["resize"], sources["resize"]
    size = int(chosen["input_size"])
    pre = Preprocessing(size, int(chosen.get("resize") or default_resize(size)),
                        tuple(float(m) for m in chosen["mean"]), tuple(float(s) for s in chosen["std"]))
    return pre, sources
