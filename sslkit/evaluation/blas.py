"""Which BLAS kernels this process runs, measured against what the CPU can do.

A wheel may bundle its own OpenBLAS: ``faiss-cpu`` 1.15 ships OpenBLAS 0.3.15, which does not know CPUs
released after it and falls back to its oldest x86-64 kernels (threadpoolctl reports the architecture
"Prescott" on a Sapphire Rapids server, where numpy's newer OpenBLAS reports "SkylakeX"). Its GEMM then
runs several times below the machine's bound, and so does every FAISS flat search built on it.

Setting ``OPENBLAS_CORETYPE`` would have to happen before the library loads, changes the process for
every other user of that library and is set on purpose by some sites (old OpenBLAS builds crash or
compute wrong results on some CPUs), so sslkit never sets it. Instead :func:`faiss_blas_ok` tells the kNN
search (:mod:`sslkit.evaluation.search`) to run its similarity GEMM on torch's BLAS (MKL / oneDNN, which
dispatch on the CPU's features at run time) and keep FAISS for the top-k selection.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ISA_LEVELS = ("sse", "avx", "avx2", "avx512")

# OpenBLAS's x86-64 kernel families (``openblas_get_corename``), by the widest vector ISA they use.
_OPENBLAS_ISA = {
    **dict.fromkeys(("prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "opteron", "opteron_sse3",
                     "barcelona", "bobcat", "katmai", "coppermine", "northwood", "banias", "athlon", "nano"), "sse"),
    **dict.fromkeys(("sandybridge", "bulldozer", "piledriver"), "avx"),
    **dict.fromkeys(("haswell", "zen", "steamroller", "excavator", "skylake", "cooperlakeavx2"), "avx2"),
    **dict.fromkeys(("skylakex", "cooperlake", "sapphirerapids"), "avx512"),
}


@dataclass(frozen=True)
class BlasLibrary:
    """One BLAS that threadpoolctl found loaded in this process."""

    api: str  # "openblas", "mkl", "blis", ...
    filepath: str
    version: str | None
    architecture: str | None
    num_threads: int

    @property
    def isa(self) -> str | None:
        """Widest vector ISA of the kernels it runs; ``None`` when unknown (MKL, BLIS dispatch at run time)."""
        return _OPENBLAS_ISA.get((self.architecture or "").lower()) if self.api == "openblas" else None

    def describe(self) -> str:
        return f"{self.api} {self.version or '?'} ({self.architecture or 'runtime dispatch'}) [{Path(self.filepath).name}]"


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_isa(flags: frozenset[str] | None = None) -> str:
    """Widest x86 vector ISA the CPU runs: ``avx512`` (F+BW+VL), ``avx2`` (with FMA), ``avx`` or ``sse``."""
    flags = cpu_flags() if flags is None else flags
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "avx" if "avx" in flags else "sse"


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU multiplies bf16 in hardware (AMX or AVX-512 BF16); elsewhere bf16 GEMM is emulated."""
    flags = cpu_flags() if flags is None else flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def cpu_model(cpuinfo: str | None = None) -> str:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "unknown CPU"
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def blas_libraries(info: list[dict] | None = None) -> list[BlasLibrary]:
    """The BLAS libraries loaded in this process (``threadpoolctl.threadpool_info()`` or a given report)."""
    if info is None:
        import faiss  # noqa: F401 - loads the wheel's own BLAS so it is reported
        from threadpoolctl import threadpool_info

        info = threadpool_info()
    return [
        BlasLibrary(d.get("internal_api", "?"), d.get("filepath", ""), d.get("version"), d.get("architecture"),
                    int(d.get("num_threads") or 0))
        for d in info if d.get("user_api") == "blas"
    ]


def below_cpu(lib: BlasLibrary, isa: str) -> bool:
    """True when ``lib`` runs kernels narrower than the CPU's ISA (a misdetected or too-old OpenBLAS)."""
    return lib.isa is not None and ISA_LEVELS.index(lib.isa) < ISA_LEVELS.index(isa)


def faiss_blas(libs: list[BlasLibrary]) -> BlasLibrary | None:
    """The BLAS the faiss wheel brought (its bundled copy), if threadpoolctl sees one."""
    import faiss

    folder = Path(faiss.__file__).resolve().parent
    bundled = {str(folder.parent / f"{folder.name}_cpu.libs"), str(folder.parent / "faiss_cpu.libs"), str(folder)}
    for lib in libs:
        if str(Path(lib.filepath).resolve().parent) in bundled or "faiss" in Path(lib.filepath).name:
            return lib
    return None


_checked: dict[str, bool] = {}


def faiss_blas_ok(info: list[dict] | None = None, flags: frozenset[str] | None = None) -> bool:
    """Whether FAISS's own BLAS runs kernels as wide as the CPU's ISA; logs one line the first time it does not.

    ``SSLKIT_KNN_ENGINE`` (``faiss`` / ``torch``) is honoured by the caller, not here.
    """
    key = "default" if info is None and flags is None else repr((info, flags))
    if key in _checked:
        return _checked[key]
    isa = cpu_isa(flags)
    lib = faiss_blas(blas_libraries(info))
    ok = lib is None or not below_cpu(lib, isa)
    if not ok:
        logger.warning(
            "FAISS's bundled %s runs %s kernels (%s) on a CPU with %s: kNN similarities use torch's BLAS instead",
            f"OpenBLAS {lib.version}", lib.architecture, lib.isa, isa,
        )
    _checked[key] = ok
    return ok


def describe_blas(threads: int | None = None) -> str:
    """One line for benchmark tables: CPU model and ISA, and each BLAS with the kernels it runs."""
    libs = "; ".join(lib.describe() for lib in blas_libraries())
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return f"{cpu_model()} ({cpu_isa()}{', native bf16' if cpu_has_native_bf16() else ''}); BLAS: {libs}" + (
        f"; env {env}" if env else "")
