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


def alternate(fns: dict[str, Callable[[], object]], repeats: int, device: str | torch.device = "cpu",
              warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each ``fn``, calls interleaved round-robin ``repeats`` times after ``warmup``."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
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
