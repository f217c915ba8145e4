"""Shared helpers of the performance benchmarks (``bench/data.py``, ``vs_lightly.py``, ``quality.py``).

Timings on a shared machine: every comparison runs its sides *alternately* (A, B, A, B, ...) in one
process and reports medians, so load from other jobs hits both sides alike and ratios stay
meaningful even when absolute figures drift.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))


def sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str | torch.device = "cpu") -> float:
    """Seconds one call of ``fn`` takes (device work included)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def repeat_times(fn: Callable[[], object], repeats: int, device: str | torch.device = "cpu") -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after one warm-up call (take the min or the median)."""
    fn()
    return [timed(fn, device) for _ in range(repeats)]


def alternate(fns: dict[str, Callable[[], object]], repeats: int, device: str | torch.device = "cpu",
              warmup: int = 1, before: Callable[[str], object] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each ``fn``, calls interleaved round-robin ``repeats`` times after ``warmup``.

    ``before(name)``, if given, runs ahead of every call of ``fns[name]``, untimed (clean-up, a sync).
    """
    for _ in range(warmup):
        for name, fn in fns.items():
            if before is not None:
                before(name)
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if before is not None:
                before(name)
            times[name].append(timed(fn, device))
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line naming the machine: CPU model and cores, GPU if any, torch version, load."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu} ({os.cpu_count()} cores, torch {torch.get_num_threads()} threads){gpu}; "
            f"torch {torch.__version__}; load average {load:.1f} at start")


def stub_trainer(total_steps: int = 10_000) -> SimpleNamespace:
    """What an sslkit objective's ``training_step`` reads from its trainer, for a bare loop.

    ``barebones=True`` makes ``self.log`` a no-op (Lightning's documented behaviour); ``global_step`` and
    ``estimated_stepping_batches`` feed the EMA schedules.
    """
    warnings.filterwarnings("ignore", message=".*self.log.*")
    return SimpleNamespace(barebones=True, global_step=0, estimated_stepping_batches=total_steps, max_epochs=1,
                           current_epoch=0, optimizers=[], training=True)


def save_json(path: str | Path, figures: dict) -> None:
    import json

    Path(path).write_text(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d"), "figures": figures},
                                     indent=1))


def chart(data_json: str | None, vs_json: str | None, quality_json: str | None, out: str) -> None:
    """The ``docs/benchmarks.md`` Performance chart from the scripts' ``--json`` outputs."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, json.loads(Path(p).read_text())["figures"]) for name, p in
              (("data", data_json), ("vs", vs_json), ("quality", quality_json)) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (name, fig_data) in zip(axes[0], panels):
        if name == "data":
            labels = list(fig_data["loader"])
            consume = [fig_data["step"]["step" if k.startswith("workers") else "aug+step"] for k in labels]
            ax.bar(labels, [fig_data["loader"][k] / c for k, c in zip(labels, consume)], color="tab:blue")
            ax.axhline(2.0, color="k", ls="--", lw=1, label="target 2x")
            ax.set_yscale("log")
            ax.set_title("loader img/s / step img/s")
        elif name == "vs":
            labels = list(fig_data)
            ax.bar(labels, [r["sslkit"] / r["lightly"] for r in fig_data.values()], color="tab:orange")
            ax.axhline(1.0, color="k", lw=1)
            ax.set_title("sslkit / lightly step img/s")
        else:
            labels = list(fig_data)
            x = range(len(labels))
            for i, (key, color) in enumerate((("random", "tab:gray"), ("sslkit", "tab:blue"), ("lightly", "tab:orange"))):
                ax.bar([j + 0.27 * (i - 1) for j in x], [fig_data[m][key] for m in labels], width=0.27, color=color, label=key)
            ax.set_xticks(list(x), labels)
            ax.set_title("kNN top-1 (%), equal steps")
        ax.tick_params(axis="x", labelrotation=20)
        if name != "vs":
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="Draw the Performance chart of docs/benchmarks.md.")
    p.add_argument("--data", help="bench/data.py --json output")
    p.add_argument("--vs", help="bench/vs_lightly.py --json output")
    p.add_argument("--quality", help="bench/quality.py --json output")
    p.add_argument("--out", default=str(REPO / "docs" / "performance_cpu.png"))
    a = p.parse_args()
    chart(a.data, a.vs, a.quality, a.out)
