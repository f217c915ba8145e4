"""BLAS detection: a wheel's OpenBLAS running kernels below the CPU's ISA is noticed and routed around."""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import pytest

from sslkit.evaluation import blas, search

AVX512 = frozenset({"sse", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "amx_bf16", "amx_tile"})
AVX2 = frozenset({"sse", "avx", "avx2", "fma"})


def report(faiss_arch: str, numpy_arch: str = "SkylakeX", faiss_bundled: bool = True) -> list[dict]:
    """A threadpoolctl report as faiss-cpu 1.15 gives it: its own OpenBLAS 0.3.15, and numpy's."""
    site = Path(faiss.__file__).resolve().parent.parent
    faiss_lib = site / "faiss_cpu.libs" / "libopenblaso-r0-d77a1985.3.15.so"
    return [
        {"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "version": "0.3.15",
         "architecture": faiss_arch, "filepath": str(faiss_lib) if faiss_bundled else "/usr/lib/libopenblas.so"},
        {"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "version": "0.3.31",
         "architecture": numpy_arch, "filepath": str(site / "numpy.libs" / "libscipy_openblas64_-32a4b2a6.so")},
        {"user_api": "openmp", "internal_api": "openmp", "num_threads": 2, "filepath": "/x/libgomp.so"},
    ]


def test_cpu_isa_and_native_bf16_from_flags():
    assert blas.cpu_isa(AVX512) == "avx512" and blas.cpu_has_native_bf16(AVX512)
    assert blas.cpu_isa(AVX2) == "avx2" and not blas.cpu_has_native_bf16(AVX2)
    assert blas.cpu_isa(frozenset({"sse2"})) == "sse"


def test_prescott_kernels_on_an_avx512_cpu_are_noticed_with_one_line(caplog):
    blas._checked.clear()
    with caplog.at_level(logging.WARNING, logger="sslkit.evaluation.blas"):
        assert not blas.blas_ok("faiss", "numpy's", report("Prescott"), AVX512)
        assert not blas.blas_ok("faiss", "numpy's", report("Prescott"), AVX512)  # said once, not per search
        assert blas.blas_ok("numpy", "torch's", report("Prescott"), AVX512)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "faiss" in lines[0] and "0.3.15" in lines[0] and "Prescott" in lines[0] and "avx512" in lines[0]


@pytest.mark.parametrize("arch,flags", [("SkylakeX", AVX512), ("Zen", AVX2), ("Haswell", AVX2)])
def test_kernels_that_match_the_cpu_are_kept(arch, flags):
    blas._checked.clear()
    assert blas.blas_ok("faiss", info=report(arch), flags=flags)


def test_each_wheel_is_judged_by_its_own_blas():
    blas._checked.clear()  # an old system OpenBLAS elsewhere in the process is not FAISS's
    assert blas.blas_ok("faiss", info=report("Prescott", faiss_bundled=False), flags=AVX512)
    assert not blas.blas_ok("numpy", info=report("Haswell", numpy_arch="Prescott"), flags=AVX2)


def test_engine_follows_the_detection(monkeypatch):
    monkeypatch.delenv("SSLKIT_KNN_ENGINE", raising=False)
    verdict = {"faiss": True, "numpy": True}
    monkeypatch.setattr(search, "blas_ok", lambda package, instead="": verdict[package])
    assert search.resolve_engine("auto") == "numpy"
    verdict["faiss"] = False  # FAISS's OpenBLAS misdetected (the Prescott): numpy's BLAS still
    assert search.resolve_engine("auto") == "numpy"
    verdict["faiss"], verdict["numpy"] = True, False  # numpy's misdetected: FAISS's own search
    assert search.resolve_engine("auto") == "faiss"
    verdict["faiss"] = False  # both misdetected: torch's MKL
    assert search.resolve_engine("auto") == "torch"
    assert search.resolve_engine("auto", device="cuda") == "torch"
    assert search.resolve_engine("faiss") == "faiss"
    monkeypatch.setenv("SSLKIT_KNN_ENGINE", "torch")
    assert search.resolve_engine("auto") == "torch"
    with pytest.raises(ValueError, match="engine"):
        search.resolve_engine("blas")


def test_the_misdetected_blas_is_not_used_end_to_end(monkeypatch, caplog):
    """FAISS's and numpy's BLAS reported below the CPU: the search runs on torch's, says so, and stays exact."""
    import numpy as np

    from sslkit.evaluation.knn import IndexSpec, knn_predict

    blas._checked.clear()
    monkeypatch.delenv("SSLKIT_KNN_ENGINE", raising=False)
    real = blas.blas_libraries
    monkeypatch.setattr(blas, "blas_libraries", lambda info=None: real(report("Prescott", numpy_arch="Prescott")))
    monkeypatch.setattr(blas, "cpu_flags", lambda: set(AVX512))
    engines = []
    real_gemm = search.gemm_topk
    monkeypatch.setattr(search, "gemm_topk", lambda b, q, k: engines.append(type(b).__module__) or real_gemm(b, q, k))
    rng = np.random.default_rng(0)
    bank, labels, queries = rng.normal(size=(300, 16)), rng.integers(0, 3, 300), rng.normal(size=(20, 16))
    with caplog.at_level(logging.WARNING, logger="sslkit.evaluation.blas"):
        auto = knn_predict(bank, labels, queries, ks=(5,), temps=(0.1,), index=IndexSpec(precision="fp32"))
    assert engines == ["torch"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("Prescott" in line for line in lines)  # one line per misdetected BLAS
    ref = knn_predict(bank, labels, queries, ks=(5,), temps=(0.1,), index=IndexSpec(engine="faiss", precision="fp32"))
    np.testing.assert_array_equal(auto[(5, 0.1)], ref[(5, 0.1)])


def test_bf16_only_where_the_hardware_has_it(monkeypatch):
    monkeypatch.setattr(search, "cpu_has_native_bf16", lambda: False)
    assert search.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(search, "cpu_has_native_bf16", lambda: True)
    assert search.resolve_precision("auto") == "bf16"
    assert search.resolve_precision("fp32") == "fp32"


def test_this_process_report_names_every_blas():
    line = blas.describe_blas()
    assert "BLAS:" in line and "openblas" in line.lower()
