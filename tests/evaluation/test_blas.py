"""BLAS detection: a wheel's OpenBLAS running kernels below the CPU's ISA is noticed and routed around."""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import pytest

from sslkit.evaluation import blas, search

AVX512 = frozenset({"sse", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "amx_bf16", "amx_tile"})
AVX2 = frozenset({"sse", "avx", "avx2", "fma"})


def report(architecture: str, faiss_bundled: bool = True) -> list[dict]:
    """A threadpoolctl report as faiss-cpu 1.15 gives it: its own OpenBLAS 0.3.15, and numpy's."""
    libs = Path(faiss.__file__).resolve().parent.parent / "faiss_cpu.libs"
    return [
        {"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "version": "0.3.15",
         "architecture": architecture,
         "filepath": str(libs / "libopenblaso-r0-d77a1985.3.15.so") if faiss_bundled else "/usr/lib/libopenblas.so"},
        {"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "version": "0.3.31",
         "architecture": "SkylakeX", "filepath": "/x/numpy.libs/libscipy_openblas64_.so"},
        {"user_api": "openmp", "internal_api": "openmp", "num_threads": 2, "filepath": "/x/libgomp.so"},
    ]


def test_cpu_isa_and_native_bf16_from_flags():
    assert blas.cpu_isa(AVX512) == "avx512" and blas.cpu_has_native_bf16(AVX512)
    assert blas.cpu_isa(AVX2) == "avx2" and not blas.cpu_has_native_bf16(AVX2)
    assert blas.cpu_isa(frozenset({"sse2"})) == "sse"
    assert blas.cpu_flags("processor: 0\nflags\t\t: fpu avx2 fma\n") == {"fpu", "avx2", "fma"}


def test_prescott_kernels_on_an_avx512_cpu_are_noticed_with_one_line(caplog):
    blas._checked.clear()
    with caplog.at_level(logging.WARNING, logger="sslkit.evaluation.blas"):
        assert not blas.faiss_blas_ok(report("Prescott"), AVX512)
        assert not blas.faiss_blas_ok(report("Prescott"), AVX512)  # said once, not per search
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "Prescott" in lines[0] and "avx512" in lines[0] and "torch" in lines[0]


@pytest.mark.parametrize("arch,flags", [("SkylakeX", AVX512), ("Zen", AVX2), ("Haswell", AVX2)])
def test_kernels_that_match_the_cpu_are_kept(arch, flags):
    blas._checked.clear()
    assert blas.faiss_blas_ok(report(arch), flags)


def test_only_faiss_own_blas_decides():
    blas._checked.clear()  # an old system OpenBLAS elsewhere in the process is not FAISS's problem
    assert blas.faiss_blas_ok(report("Prescott", faiss_bundled=False), AVX512)


def test_engine_follows_the_detection(monkeypatch):
    monkeypatch.delenv("SSLKIT_KNN_ENGINE", raising=False)
    monkeypatch.setattr(search, "faiss_blas_ok", lambda: False)
    assert search.resolve_engine("auto") == "torch"
    monkeypatch.setattr(search, "faiss_blas_ok", lambda: True)
    assert search.resolve_engine("auto") == "faiss"
    assert search.resolve_engine("torch") == "torch"
    monkeypatch.setenv("SSLKIT_KNN_ENGINE", "torch")
    assert search.resolve_engine("auto") == "torch"
    with pytest.raises(ValueError, match="engine"):
        search.resolve_engine("blas")


def test_bf16_only_where_the_hardware_has_it(monkeypatch):
    monkeypatch.setattr(search, "cpu_has_native_bf16", lambda: False)
    assert search.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(search, "cpu_has_native_bf16", lambda: True)
    assert search.resolve_precision("auto") == "bf16"
    assert search.resolve_precision("fp32") == "fp32"


def test_this_process_report_names_every_blas():
    line = blas.describe_blas()
    assert "BLAS:" in line and "openblas" in line.lower()
