"""What this machine's CPU can do: feature flags, the widest vector ISA, native bf16, the model name.

One place for the facts that precision (``precision: auto``), the kNN search's BLAS check and the
benchmarks all need. Pure reads of ``/proc/cpuinfo``: no import-time work.
"""

from __future__ import annotations

import os
from pathlib import Path

ISA_LEVELS = ("sse", "avx", "avx2", "avx512")

# /proc/cpuinfo flags of x86 CPUs with native bf16 matrix instructions.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); empty where the file is absent or unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, aarch64
            return set(value.split())
    return set()


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """True when the CPU has AMX-BF16 or AVX-512-BF16 (bf16 GEMMs faster than fp32 ones)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def cpu_isa(flags: set[str] | frozenset[str] | None = None) -> str:
    """Widest x86 vector ISA the CPU runs: ``avx512`` (F+BW+VL), ``avx2`` (with FMA), ``avx`` or ``sse``."""
    flags = cpu_flags() if flags is None else flags
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "avx" if "avx" in flags else "sse"


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``unknown CPU``."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "unknown CPU"
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, as SLURM and taskset set it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
