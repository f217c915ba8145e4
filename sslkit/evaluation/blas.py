"""Which BLAS kernels this process runs, measured against what the CPU can do.

A wheel may bundle its own OpenBLAS: ``faiss-cpu`` 1.15 ships OpenBLAS 0.3.15, which does not know CPUs
released after it and falls back to its oldest x86-64 kernels (threadpoolctl reports the architecture
"Prescott" on a Sapphire Rapids server, where numpy's newer OpenBLAS reports "SkylakeX"). Its GEMM then
runs several times below the machine's bound, and so does every FAISS flat search built on it.

Setting ``OPENBLAS_CORETYPE`` would have to happen before the library loads, changes the process for
every other user of that library and is set on purpose by some sites (old OpenBLAS builds crash or
compute wrong results on some CPUs), so sslkit never sets it. Instead the kNN search
(:mod:`sslkit.evaluation.search`) runs its similarity GEMM on a BLAS whose kernels :func:`blas_ok` finds
as wide as the CPU's (numpy's current OpenBLAS, else torch's MKL / oneDNN, which dispatch at run time) and
keeps FAISS for the top-k selection.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sslkit.hardware import ISA_LEVELS, cpu_flags, cpu_has_native_bf16, cpu_isa, cpu_model

logger = logging.getLogger(__name__)

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


def library_of(package: str, libs: list[BlasLibrary]) -> BlasLibrary | None:
    """The BLAS a wheel brought (``numpy``: ``numpy.libs/``; ``faiss``: ``faiss_cpu.libs/``), if loaded."""
    import importlib

    folder = Path(importlib.import_module(package).__file__).resolve().parent
    bundled = {folder, folder.parent / f"{folder.name}.libs", folder.parent / f"{folder.name}_cpu.libs"}
    for lib in libs:
        if Path(lib.filepath).resolve().parent in bundled:
            return lib
    return None


_checked: dict[str, bool] = {}


def blas_ok(
    package: str, instead: str = "another BLAS", info: list[dict] | None = None,
    flags: set[str] | frozenset[str] | None = None,
) -> bool:
    """Whether ``package``'s BLAS runs kernels as wide as the CPU's ISA; logs one line the first time it does not.

    Args:
        package: whose bundled BLAS (``numpy``, ``faiss``).
        instead: what the caller uses when it does not, for the log line.
        info: a threadpoolctl report (default: this process's); flags: CPU flags (default: this CPU's).
    """
    key = repr((package, info, sorted(flags) if flags is not None else None))
    if key not in _checked:
        isa = cpu_isa(cpu_flags() if flags is None else set(flags))
        lib = library_of(package, blas_libraries(info))
        _checked[key] = lib is None or not below_cpu(lib, isa)
        if not _checked[key]:
            logger.warning("%s's %s runs %s kernels (%s) on a CPU with %s: kNN similarities use %s",
                           package, f"{lib.api} {lib.version}", lib.architecture, lib.isa, isa, instead)
    return _checked[key]


def describe_blas() -> str:
    """One line for benchmark tables: CPU model and ISA, and each BLAS with the kernels it runs."""
    libs = "; ".join(lib.describe() for lib in blas_libraries())
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return f"{cpu_model()} ({cpu_isa()}{', native bf16' if cpu_has_native_bf16() else ''}); BLAS: {libs}" + (
        f"; env {env}" if env else "")
