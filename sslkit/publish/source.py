"""What ``sslkit publish`` reads: a run directory, a Lightning checkpoint, or a DeepSpeed checkpoint folder.

Nothing here unpickles arbitrary objects. Lightning checkpoints go through
:func:`sslkit.objectives.loading.read_checkpoint` (``torch.load(weights_only=True)``). DeepSpeed's
converter (``zero_to_fp32``, and Lightning's wrapper around it) calls ``torch.load(weights_only=False)``;
:func:`convert_deepspeed` runs it with every ``torch.load`` forced to ``weights_only=True`` (DeepSpeed's
own enum and loss-scaler classes allowed), so a folder whose pickles hold anything else is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from sslkit.config import load_yaml
from sslkit.distributed.checkpoint_io import deepspeed_safe_globals, weights_only_torch_load
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.loading import load_objective, read_checkpoint

MAX_RESULT_BYTES = 1 << 20  # an eval result JSON is a few kB; skip anything large


class PublishError(ValueError):
    """A source that cannot be published, with the reason the user needs."""


@dataclass
class Source:
    """A resolved publishing source.

    Attributes:
        checkpoint: The Lightning checkpoint file read (a converted file for DeepSpeed folders).
        origin: What the user named (run dir, checkpoint file or DeepSpeed folder).
        run_dir: The run directory, when there is one (config, metrics, eval results).
        raw: The checkpoint dict (weights-only loaded).
        objective: The rebuilt objective.
        deepspeed: Whether ``origin`` was a DeepSpeed folder.
    """

    checkpoint: Path
    origin: Path
    run_dir: Path | None
    raw: dict[str, Any]
    objective: SSLObjective
    deepspeed: bool = False
    results: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)

    def config(self) -> dict[str, Any] | None:
        """The run's resolved training config (``config.yaml``), if the run directory holds one."""
        path = self.run_dir / "config.yaml" if self.run_dir else None
        if path is None or not path.is_file():
            return None
        return load_yaml(path)


def is_deepspeed_dir(path: Path) -> bool:
    """A DeepSpeed checkpoint folder: ``latest`` + ``<tag>/*_model_states.pt``."""
    return path.is_dir() and ((path / "latest").is_file() or any(path.glob("*/*_model_states.pt")))


def find_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """``(checkpoint, run_dir or None)`` for a run directory, checkpoint file or DeepSpeed folder."""
    if not path.exists():
        raise PublishError(f"{path}: no such run directory or checkpoint")
    if path.is_file() or is_deepspeed_dir(path):
        parent = path.parent
        run_dir = parent.parent if parent.name == "checkpoints" and (parent.parent / "config.yaml").is_file() else None
        return path, run_dir
    last = path / "checkpoints" / "last.ckpt"
    if last.exists():
        return last, path
    raise PublishError(f"{path} is a directory without checkpoints/last.ckpt (nor a DeepSpeed checkpoint folder)")


def convert_deepspeed(folder: Path, output_file: Path) -> Path:
    """A DeepSpeed (ZeRO) checkpoint folder → one fp32 Lightning checkpoint file, loading weights only.

    Uses the scale-out converter (:func:`sslkit.distributed.zero.convert_checkpoint`: ``zero_to_fp32``
    plus the fp32 EMA shadows).
    """
    from sslkit.distributed.zero import convert_checkpoint

    try:
        with weights_only_torch_load(deepspeed_safe_globals()):
            convert_checkpoint(folder, output_file)
    except (ImportError, ModuleNotFoundError) as err:
        raise PublishError(f"{folder} is a DeepSpeed checkpoint; converting it needs deepspeed ({err})") from err
    except Exception as err:  # noqa: BLE001 - unpickling refusals surface as many types
        raise PublishError(
            f"refusing to convert the DeepSpeed checkpoint {folder}: it could not be read with "
            f"weights-only loading ({type(err).__name__}: {err}). sslkit never unpickles arbitrary objects; "
            "if you trust this folder, convert it yourself (`python -m sslkit.distributed.zero DIR OUT.ckpt`) "
            "and publish OUT.ckpt."
        ) from err
    return output_file


def open_source(path: str | Path, workdir: Path, exclude: Path | None = None) -> Source:
    """Resolve and safely load a publishing source (DeepSpeed folders are converted into ``workdir``).

    ``exclude``: a folder whose eval results are not the run's (the publishing target, if inside it).
    """
    origin = Path(path)
    checkpoint, run_dir = find_checkpoint(origin)
    deepspeed = is_deepspeed_dir(checkpoint)
    if deepspeed:
        checkpoint = convert_deepspeed(checkpoint, workdir / "converted_fp32.ckpt")
    elif checkpoint.is_dir():
        raise PublishError(f"{checkpoint} is a directory but not a DeepSpeed checkpoint folder")
    try:
        raw = read_checkpoint(checkpoint)
        objective = load_objective(checkpoint)
    except ValueError as err:
        raise PublishError(str(err)) from err
    results = find_results(run_dir, exclude) if run_dir else []
    return Source(checkpoint, origin, run_dir, raw, objective, deepspeed, results)


def select_backbone(objective: SSLObjective, which: str | None) -> tuple[nn.Module, str]:
    """``(backbone, "student" | "teacher")``; ``None`` = the objective's documented ``eval_backbone()``."""
    teacher = getattr(objective, "teacher_backbone", None)
    if which is None:
        backbone = objective.eval_backbone()
        return backbone, "teacher" if teacher is not None and backbone is teacher else "student"
    if which == "teacher":
        if teacher is None:
            raise PublishError(f"{type(objective).__name__} has no EMA teacher; publish --which student")
        return teacher, "teacher"
    if which == "student":
        return objective.backbone, "student"
    raise PublishError(f"--which must be 'student' or 'teacher', got {which!r}")


def find_results(run_dir: Path, exclude: Path | None = None, limit: int = 100) -> list[tuple[Path, dict[str, Any]]]:
    """Eval result JSONs (``sslkit.evaluation.results.write_result``) under ``run_dir`` or registered in its
    ``eval/results.jsonl`` (results written elsewhere with ``--out``).

    Hidden folders (staging) and ``exclude`` (a previously published folder) are skipped.
    """
    from sslkit.evaluation.results import registered_results

    found: list[tuple[Path, dict[str, Any]]] = []
    skip = exclude.resolve() if exclude is not None else None
    inside = sorted(run_dir.rglob("*.json"))
    for path in [*inside, *(p for p in registered_results(run_dir) if p.resolve() not in {q.resolve() for q in inside})]:
        rel = path.relative_to(run_dir) if path.is_relative_to(run_dir) else Path(path.name)
        if any(part.startswith(".") for part in rel.parts[:-1]) or (skip and path.resolve().is_relative_to(skip)):
            continue
        if len(found) >= limit or path.stat().st_size > MAX_RESULT_BYTES:
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(result, dict) and "protocol" in result and isinstance(result.get("numbers"), dict):
            found.append((path, result))
    return found
