"""The evaluation figure: kNN accuracy vs k, probe accuracy over the LR grid, kNN over epochs."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sslkit.errors import UserError
from sslkit.evaluation.results import read_result


def read_log_series(path: str | Path, metric: str = "val/knn_top1") -> list[tuple[int, float]]:
    """``(step, value)`` of ``metric`` from a Lightning CSVLogger ``metrics.csv`` or a TensorBoard dir."""
    path = Path(path)
    if path.is_dir():
        csvs = sorted(path.rglob("metrics.csv"))
        if csvs:
            return read_log_series(csvs[-1], metric)
        return _tensorboard_series(path, metric)
    points = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get(metric) not in (None, ""):
                step = row.get("step") or row.get("epoch") or len(points)
                points.append((int(float(step)), float(row[metric])))
    return points


def _tensorboard_series(path: Path, metric: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = []
    for events in sorted({p.parent for p in path.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if metric in acc.Tags()["scalars"]:
            points += [(int(e.step), e.value) for e in acc.Scalars(metric)]
    return points


def draw_report(
    results: Sequence[str | Path],
    logs: Sequence[str | Path] = (),
    out_png: str | Path = "eval_report.png",
    metric: str = "val/knn_top1",
) -> Path:
    """One PNG with a panel per kind of input present; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [(Path(p), read_result(p)) for p in results]
    knn = [(p, r) for p, r in loaded if r["protocol"] == "knn"]
    probe = [(p, r) for p, r in loaded if r["protocol"] == "linear_probe"]
    series = [(Path(p), metric) for p in logs if read_log_series(p, metric)]  # only logs that hold the metric
    panels = [f for f, present in ((_knn_panel, knn), (_probe_panel, probe), (_log_panel, series)) if present]
    if not panels:
        raise UserError(f"nothing to draw: give kNN / linear-probe results, or logs that hold {metric}")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    inputs = {_knn_panel: knn, _probe_panel: probe, _log_panel: series}
    for ax, panel in zip(axes[0], panels):
        panel(ax, inputs[panel])
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def _label(path: Path, result: dict[str, Any]) -> str:
    """``<run folder>/<checkpoint>@<sha256[:8]>``: two evaluations of two runs' ``last.ckpt`` stay apart."""
    ckpt = result.get("checkpoint") or {}
    if not ckpt.get("path"):
        return path.stem
    where = Path(ckpt["path"])
    run = where.parent.parent.name if where.parent.name == "checkpoints" else where.parent.name
    return f"{run}/{where.stem}@{str(ckpt.get('sha256', ''))[:8]}"


def _knn_panel(ax: Any, knn: list[tuple[Path, dict[str, Any]]]) -> None:
    for path, result in knn:
        numbers = result["numbers"]
        temps = sorted({k.split("_")[1][1:] for k in numbers if k.endswith("_top1") and k.startswith("k")}, key=float)
        for t in temps:
            ks = sorted(int(k.split("_")[0][1:]) for k in numbers if k.endswith(f"_t{t}_top1"))
            ax.plot(ks, [numbers[f"k{k}_t{t}_top1"] for k in ks], marker="o", label=f"{_label(path, result)} T={t}")
    ax.set(xscale="log", xlabel="k (neighbours)", ylabel="top-1 (%)", title="kNN accuracy vs k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _probe_panel(ax: Any, probe: list[tuple[Path, dict[str, Any]]]) -> None:
    for path, result in probe:
        grid = result["numbers"]["grid"]
        for wd in sorted({r["wd"] for r in grid}):
            rows = sorted((r for r in grid if r["wd"] == wd), key=lambda r: r["lr"])
            ax.plot([r["lr"] for r in rows], [r["holdout_top1"] for r in rows], marker="o",
                    label=f"{_label(path, result)} wd={wd:g}")
        best = result["numbers"]["best"]
        ax.scatter([best["lr"]], [best["holdout_top1"]], s=120, facecolors="none", edgecolors="k")
    ax.set(xscale="log", xlabel="learning rate", ylabel="held-out top-1 (%)", title="Linear probe over the LR grid")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _log_panel(ax: Any, logs: list[tuple[Path, str]]) -> None:
    metric = logs[0][1]
    for path, name in logs:
        points = read_log_series(path, name)
        ax.plot(*zip(*points), marker=".", label=path.parent.name if path.is_file() else path.name)
    percent = "knn" in metric or "top1" in metric or "top5" in metric or "acc" in metric
    title = "Online kNN over training" if metric.startswith("val/knn") else f"{metric} over training"
    ax.set(xlabel="optimizer step", ylabel=metric + (" (%)" if percent else ""), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
