"""Evaluation results on disk: one JSON (checkpoint, protocol, numbers) and a markdown table beside it."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sslkit.provenance import file_sha256, package_versions

__all__ = ["RESULTS_INDEX", "checkpoint_record", "file_sha256", "markdown", "read_result", "register_result",
           "registered_results", "write_result"]
RESULTS_INDEX = "eval/results.jsonl"  # in a run folder: every result measured on one of its checkpoints


def checkpoint_record(path: str | Path) -> dict[str, str]:
    """``{"path": absolute path, "sha256": ...}``: what the numbers were measured on."""
    path = Path(path).resolve()
    return {"path": str(path), "sha256": file_sha256(path)}


def write_result(out_json: str | Path, protocol: str, numbers: dict[str, Any], **context: Any) -> tuple[Path, Path]:
    """Write ``out_json`` and ``out_json`` with ``.md``; returns both paths.

    Args:
        out_json: result path (``.json``).
        protocol: ``"knn"``, ``"linear_probe"`` or ``"logistic_regression"``.
        numbers: the protocol's result dict.
        **context: provenance: ``checkpoint``, ``features`` (the features' identity), settings.
    """
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "protocol": protocol,
        **context,
        "numbers": numbers,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sslkit_version": package_versions(("sslkit",))["sslkit"],
        "host": platform.node(),
    }
    out_json.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    out_md = out_json.with_suffix(".md")
    out_md.write_text(markdown(result))
    return out_json, out_md


def markdown(result: dict[str, Any]) -> str:
    """A markdown summary of one result (the table the JSON's numbers make)."""
    lines = [f"# {result['protocol']}", ""]
    ckpt = result.get("checkpoint") or {}
    if ckpt:
        lines += [f"checkpoint: `{ckpt.get('path')}` (sha256 `{str(ckpt.get('sha256'))[:16]}…`)", ""]
    numbers = result["numbers"]
    if result["protocol"] == "knn":
        lines += _knn_table(numbers)
    else:
        lines += _probe_table(numbers)
    return "\n".join(lines) + "\n"


def _knn_table(numbers: dict[str, Any]) -> list[str]:
    ks = sorted({int(k.split("_")[0][1:]) for k in numbers if k.startswith("k") and k.endswith("_top1")})
    temps = sorted({k.split("_")[1][1:] for k in numbers if k.startswith("k") and k.endswith("_top1")}, key=float)
    header = "| k | " + " | ".join(f"T={t} top-1 | T={t} top-5" for t in temps) + " |"
    rows = [header, "|---" * (1 + 2 * len(temps)) + "|"]
    for k in ks:
        cells = [f"{numbers[f'k{k}_t{t}_{m}']:.2f}" for t in temps for m in ("top1", "top5")]
        rows.append(f"| {k} | " + " | ".join(cells) + " |")
    extra = {k: v for k, v in numbers.items() if not k.startswith("k")}
    return rows + [""] + [f"- {k}: {v:g}" for k, v in extra.items()]


def _probe_table(numbers: dict[str, Any]) -> list[str]:
    best = numbers["best"]
    setting = ", ".join(f"{k}={best[k]:g}" for k in ("lr", "wd", "C") if k in best)
    lines = [
        f"best ({setting}, chosen on held-out): test top-1 **{best['test_top1']:.2f}**, "
        f"top-5 {best['test_top5']:.2f}, held-out top-1 {best['holdout_top1']:.2f}",
        "",
    ]
    grid = numbers["grid"]
    keys = [k for k in grid[0] if k not in ("holdout_top1", "test_top1")]
    cols = ["holdout_top1"] + (["test_top1"] if "test_top1" in grid[0] else [])
    lines += ["| " + " | ".join(keys + cols) + " |", "|---" * (len(keys) + len(cols)) + "|"]
    lines += ["| " + " | ".join([f"{r[k]:g}" for k in keys] + [f"{r[c]:.2f}" for c in cols]) + " |" for r in grid]
    return lines


def read_result(path: str | Path) -> dict[str, Any]:
    """A result JSON written by :func:`write_result`."""
    return json.loads(Path(path).read_text())


def run_dir_of(checkpoint: str | Path) -> Path | None:
    """The run folder of a checkpoint at ``<run>/checkpoints/<name>.ckpt``, else ``None``."""
    parent = Path(checkpoint).resolve().parent
    return parent.parent if parent.name == "checkpoints" else None


def register_result(result_json: str | Path, checkpoint: dict[str, Any]) -> Path | None:
    """Note ``result_json`` in the checkpoint's run folder (``eval/results.jsonl``), wherever it was written,
    so that ``sslkit publish`` lists it (when its checkpoint hash matches). Returns the index path."""
    run = run_dir_of(checkpoint["path"]) if checkpoint.get("path") else None
    if run is None:
        return None
    index = run / RESULTS_INDEX
    index.parent.mkdir(parents=True, exist_ok=True)
    line = {"result": str(Path(result_json).resolve()), "checkpoint_sha256": checkpoint.get("sha256")}
    with index.open("a") as f:
        f.write(json.dumps(line) + "\n")
    return index


def registered_results(run_dir: str | Path) -> list[Path]:
    """Result files a run's index names (existing ones, each once, in order)."""
    index = Path(run_dir) / RESULTS_INDEX
    if not index.is_file():
        return []
    paths: list[Path] = []
    for line in index.read_text().splitlines():
        try:
            path = Path(json.loads(line)["result"])
        except (ValueError, KeyError, TypeError):
            continue
        if path.is_file() and path not in paths:
            paths.append(path)
    return paths
