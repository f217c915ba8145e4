"""Exact top-k inner-product search for kNN evaluation: which GEMM computes the similarities, and how.

Exhaustive search over a bank is one GEMM (``Q x N x D``) plus a top-k selection, so its bound is the
machine's GEMM rate. Every engine returns the same neighbours; they differ in whose BLAS runs the GEMM:

- ``numpy`` (the default on CPU where numpy's BLAS runs the CPU's widest kernels): the GEMM in tiles of
  1,024 queries x 4,096 bank rows on numpy's OpenBLAS, written into reused buffers that stay in cache; each
  query's heap is initialised from its first 8,192 similarities, pre-filled just below a vectorised lower
  bound on its k-th best (~k inserts instead of ~k * (1 + ln(n / k))), and the later tiles go to FAISS's C++
  min-heaps (``float_minheap_array_t.addn``: no index array), which by then insert few of them. numpy's
  wheels bring a current OpenBLAS that knows current CPUs; FAISS's wheel may not (below). Chosen by
  measurement: on an AVX2 AMD EPYC, one thread, 50,000 x 512 bank, 4,000 queries, k=200, the whole
  ``knn_classify`` sweep took 2.96 s on this engine against 3.27 s on ``faiss`` (2.92 / 3.39 s in a second
  run; GEMM bound 2.35 s; docs/benchmarks.md, "Evaluation"), and on current Intel servers FAISS's wheel
  runs below the CPU (next item).
- ``faiss`` (where numpy's BLAS is below the CPU's ISA and FAISS's is not): FAISS's own ``IndexFlatIP`` (its
  BLAS for the GEMM, its C++ heaps for the selection). ``faiss-cpu`` 1.15 bundles OpenBLAS 0.3.15, which
  falls back to its oldest "Prescott" kernels on current Intel servers (7.18 s, 9.7x the bound in the
  issue's measurement, against 1.85 s with the right kernels). :mod:`sslkit.evaluation.blas` checks each
  BLAS's kernels against the CPU and logs one line for one that runs below it. FAISS also keeps the IVF
  index for very large banks.
- ``torch``: the same blocks on torch's BLAS (MKL / oneDNN, run-time dispatch on the CPU's features); the
  fallback when numpy's BLAS runs kernels below the CPU's ISA, and the engine on CUDA (TF32 off, ``topk``
  merging on the GPU).
- ``bf16`` candidates (``precision="bf16"``): the GEMM in bf16 (AMX on CPU, tensor cores on GPU) keeps the
  top ``k + margin`` per query, then an exact float64 re-rank of those candidates. A per-query bound on the
  bf16 error (from the rounding residuals, Cauchy-Schwarz, fp32 accumulation and bf16 output rounding)
  certifies that no item outside the candidates can reach the exact top-k; a query whose candidates are not
  certified is searched again with a wider margin, then exactly. Results are the exact ones, never "almost".
  ``precision="auto"`` uses it only where bf16 runs in hardware (AMX / AVX-512-BF16 CPUs, CUDA): on AVX2
  CPUs torch emulates bf16 GEMM at well under 1 GFLOP/s.
"""

from __future__ import annotations

import os

import faiss
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from sslkit.hardware import cpu_has_native_bf16
from sslkit.evaluation.blas import blas_ok

ENGINES = ("auto", "numpy", "torch", "faiss")
PRECISIONS = ("auto", "fp32", "bf16")
_BANK_BLOCK = 4096  # bank rows per GEMM block
_QUERY_BLOCK = 4096  # queries per block on CUDA
_CPU_QUERY_BLOCK = 1024  # queries per CPU tile: 1024 x 4096 fp32 similarities = 16 MB, reused (in L3); 256 measured ~10 % slower
_FIRST_BLOCK = 8192  # bank rows that initialise the heaps (1024 x 8192 fp32 = 32 MB; 4096 and 16384 measured slower)
_GROUP = 8  # heap initialisation: a lower bound from the maxima of n / 8 column groups
_BF16_UNIT = 2.0**-8  # bf16 unit roundoff (8 significant bits)
_FP32_UNIT = 2.0**-24


def resolve_engine(engine: str, device: str | torch.device = "cpu") -> str:
    """``auto``: ``torch`` on CUDA; on CPU ``numpy`` where numpy's BLAS runs the CPU's widest kernels, else
    FAISS's own search where its BLAS does, else ``torch``. ``SSLKIT_KNN_ENGINE`` overrides ``auto``."""
    engine = os.environ.get("SSLKIT_KNN_ENGINE", engine) if engine == "auto" else engine
    if engine not in ENGINES:
        raise ValueError(f"kNN engine must be one of {ENGINES}, got {engine!r}")
    if engine != "auto":
        return engine
    if torch.device(device).type == "cuda":
        return "torch"
    if blas_ok("numpy", instead="FAISS's own search (or torch's BLAS) for the GEMM"):
        return "numpy"
    return "faiss" if blas_ok("faiss", instead="torch's BLAS (MKL) for the GEMM, FAISS's heaps for the selection") \
        else "torch"


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``auto``: ``bf16`` candidates where bf16 GEMM runs in hardware, else ``fp32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"kNN precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def faiss_flat_search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` on FAISS's GEMM path.

    FAISS scans query by query (no GEMM) below ``distance_compute_blas_threshold`` queries; the GEMM path
    is the fast one for the many-query evaluation searches made here. Database blocks of 4096 (default
    1024) measured ~5-10 % faster on CPU (bench/eval.py). Restored afterwards.
    """
    names = ("distance_compute_blas_threshold", "distance_compute_blas_database_bs")
    old = [getattr(faiss.cvar, n) for n in names]
    for name, value in zip(names, (20, 4096)):
        setattr(faiss.cvar, name, value)
    try:
        return index.search(queries, k)
    finally:
        for name, value in zip(names, old):
            setattr(faiss.cvar, name, value)


def gemm_topk(bank: np.ndarray | torch.Tensor, queries: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner products per query by blocked GEMM: numpy's BLAS for arrays, torch's for tensors.

    Returns float32 ``(Q, k)`` similarities (descending, unsorted ties) and int64 indices, on the host.
    numpy's BLAS pool is held to torch's thread count, so ``--threads`` means the same for every engine.

    On CPU, tiles of ``_CPU_QUERY_BLOCK`` queries are written into reused buffers that stay in the last-level
    cache (a fresh 64 MB block per GEMM cost page faults and a trip through memory before the selection).
    A query's first ``_FIRST_BLOCK`` similarities go to a heap pre-filled just below a vectorised lower bound
    on its k-th best (:func:`_init_heaps`: ~k inserts instead of ``k * (1 + ln(n / k))``); the later blocks
    go to FAISS's C++ heaps, which by then insert only the few similarities above each query's k-th best.
    """
    if isinstance(bank, torch.Tensor) and bank.device.type == "cuda":
        return _gemm_topk_cuda(bank, queries, k)
    num_queries, num_bank = queries.shape[0], bank.shape[0]
    sims = np.empty((num_queries, k), np.float32)
    idx = np.empty((num_queries, k), np.int64)
    numpy_gemm = isinstance(bank, np.ndarray)
    first = min(num_bank, max(_FIRST_BLOCK, k))
    rows = min(_CPU_QUERY_BLOCK, num_queries)
    buffers = {n: np.empty((rows, n), np.float32) for n in (first, _BANK_BLOCK)} if numpy_gemm else {}

    def similarities(block_q, start: int, stop: int) -> np.ndarray:
        bank_block = bank[start:stop]
        out = buffers.get(stop - start)
        if out is not None:
            return np.matmul(block_q, bank_block.T, out=out[: block_q.shape[0]])
        block = block_q @ bank_block.T
        if isinstance(block, torch.Tensor):
            block = block.float().numpy()
        return np.ascontiguousarray(block, dtype=np.float32)

    with threadpool_limits(torch.get_num_threads(), user_api="blas"):
        for i in range(0, num_queries, _CPU_QUERY_BLOCK):
            block_q = queries[i : i + _CPU_QUERY_BLOCK]
            top_s, top_i = sims[i : i + _CPU_QUERY_BLOCK], idx[i : i + _CPU_QUERY_BLOCK]
            heaps = faiss.float_minheap_array_t()  # a min-heap per query keeps its k largest
            heaps.nh, heaps.k = block_q.shape[0], k
            heaps.val, heaps.ids = faiss.swig_ptr(top_s), faiss.swig_ptr(top_i)
            _init_heaps(heaps, top_s, top_i, similarities(block_q, 0, first))
            for j in range(first, num_bank, _BANK_BLOCK):
                block = similarities(block_q, j, min(j + _BANK_BLOCK, num_bank))
                heaps.addn(block.shape[1], faiss.swig_ptr(block), j, 0, block.shape[0])
            heaps.reorder()
    return sims, idx


def _init_heaps(heaps: faiss.float_minheap_array_t, top_s: np.ndarray, top_i: np.ndarray, block: np.ndarray) -> None:
    """Fill each query's min-heap with the ``k`` largest of its first block of similarities (bank rows 0 ..).

    Each heap starts full of placeholders just below a lower bound on the query's k-th best of the block
    (the k-th largest of the maxima of ``_GROUP`` strided column groups: k groups each hold an item at least
    that large), so FAISS's scan inserts only the ~k-1.5k items at or above the bound instead of
    ``k * (1 + ln(n / k))``; at least k of them exist, so every placeholder is replaced. Same k values as
    inserts of the whole block into empty heaps; among equal values either bank row (ties are resolved
    exactly by :func:`sslkit.evaluation.knn.search_neighbours`).
    """
    q, n = block.shape
    k = top_s.shape[1]
    g = n // _GROUP
    if g < k:  # too few groups for the bound: start from empty heaps
        heaps.heapify()
    else:
        gmax = block[:, :g].copy()
        for r in range(1, _GROUP):
            np.fmax(gmax, block[:, r * g : (r + 1) * g], out=gmax)
        gmax[np.isnan(gmax)] = -np.inf  # NaN similarities never enter a heap: they hold no bound either
        floor = np.partition(gmax, g - k, axis=1)[:, g - k]
        # Strictly below the bound: the heaps insert only what is strictly above their root.
        top_s[:] = np.nextafter(floor, np.float32(-np.inf))[:, None]
        top_i[:] = -1
    heaps.addn(n, faiss.swig_ptr(block), 0, 0, q)


def _gemm_topk_cuda(bank: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    best_s, best_i = [], []
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 would round fp32 inputs to 10 mantissa bits
    try:
        for i in range(0, queries.shape[0], _QUERY_BLOCK):
            block_q = queries[i : i + _QUERY_BLOCK]
            top_s = torch.full((block_q.shape[0], 0), -float("inf"), device=bank.device)
            top_i = torch.zeros((block_q.shape[0], 0), dtype=torch.long, device=bank.device)
            for j in range(0, bank.shape[0], 8 * _BANK_BLOCK):
                s = (block_q @ bank[j : j + 8 * _BANK_BLOCK].T).float()
                s, ids = torch.cat([top_s, s], 1), torch.cat([top_i, torch.arange(j, j + s.shape[1], device=s.device)
                                                               .expand(s.shape[0], -1)], 1)
                top_s, pos = s.topk(min(k, s.shape[1]), dim=1)
                top_i = ids.gather(1, pos)
            best_s.append(top_s.cpu())
            best_i.append(top_i.cpu())
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return torch.cat(best_s).numpy(), torch.cat(best_i).numpy()


def flat_search(
    bank: np.ndarray, queries: np.ndarray, k: int, engine: str = "auto", precision: str = "auto",
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products (unsorted ties) on the engine and precision chosen for this machine."""
    if resolve_precision(precision, device) == "bf16":
        return bf16_search(bank, queries, k, device)[:2]
    engine = resolve_engine(engine, device)
    if engine == "faiss":
        index = faiss.IndexFlatIP(bank.shape[1])
        index.add(bank)
        return faiss_flat_search(index, queries, k)
    if engine == "numpy":
        return gemm_topk(bank, queries, k)
    return gemm_topk(torch.from_numpy(bank).to(device), torch.from_numpy(queries).to(device), k)


def bf16_search(
    bank: np.ndarray, queries: np.ndarray, k: int, device: str | torch.device = "cpu", margin: int | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact top-``k`` via a bf16 candidate pass and a certified float64 re-rank.

    Args:
        bank: normalised float32 ``(N, D)``; queries: ``(Q, D)``.
        k: neighbours per query (``<= N``).
        device: where the bf16 GEMM runs.
        margin: extra candidates per query; default ``max(64, k)``.

    Returns:
        ``(sims, idx, num_uncertified)``: float32 similarities (from the float64 re-rank) and indices,
        unsorted ties, and how many queries failed the certificate (searched again with 8x the margin,
        then exactly in float64).
    """
    num_bank, dim = bank.shape
    margin = max(64, k) if margin is None else margin
    width = min(num_bank, k + margin)
    tb, tq = torch.from_numpy(bank).to(device), torch.from_numpy(queries).to(device)
    bank16, query16 = tb.bfloat16(), tq.bfloat16()
    cand_s, cand_i = gemm_topk(bank16, query16, width)  # (Q, width) bf16 similarities, unsorted
    delta = _bf16_error_bound(tb, bank16, tq, query16, dim)  # (Q,) |bf16 sim - exact sim| <= delta
    order = np.argsort(-cand_s, axis=1, kind="stable")
    cand_s, cand_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    # Everything outside the list has a bf16 sim <= the list's last one; the exact k-th is >= kth - delta.
    certified = (width == num_bank) | (cand_s[:, -1] + delta < cand_s[:, k - 1] - delta)
    sims, idx = _rerank(bank, queries, cand_i, k)
    failed = np.flatnonzero(~certified)
    if failed.size and width < num_bank and margin < 64 * max(64, k):
        sims[failed], idx[failed], _ = bf16_search(bank, queries[failed], k, device, 8 * margin)
    elif failed.size:
        sims[failed], idx[failed] = _exact_f64_topk(bank, queries[failed], k)
    return sims, idx, int(failed.size)


def _exact_f64_topk(bank: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 brute force in bank blocks (the last resort of :func:`bf16_search`)."""
    q = torch.from_numpy(queries).double()
    top_s = torch.empty((q.shape[0], 0), dtype=torch.float64)
    top_i = torch.empty((q.shape[0], 0), dtype=torch.long)
    for j in range(0, bank.shape[0], _BANK_BLOCK):
        s = q @ torch.from_numpy(bank[j : j + _BANK_BLOCK]).double().T
        ids = torch.arange(j, j + s.shape[1]).expand(s.shape[0], -1)
        s, ids = torch.cat([top_s, s], 1), torch.cat([top_i, ids], 1)
        top_s, pos = s.topk(min(k, s.shape[1]), dim=1)
        top_i = ids.gather(1, pos)
    return top_s.float().numpy(), top_i.numpy()


def _bf16_error_bound(
    bank: torch.Tensor, bank16: torch.Tensor, queries: torch.Tensor, query16: torch.Tensor, dim: int
) -> np.ndarray:
    """Per-query bound on ``|q16 . b16 (bf16 GEMM output) - q . b|`` over the whole bank.

    ``q . b - q16 . b16 = q16 . rb + rq . b16 + rq . rb`` with residuals ``r = x - bf16(x)``, each term bounded
    by Cauchy-Schwarz with the measured residual norms; plus fp32 accumulation over ``dim`` terms (gamma_D)
    and the rounding of the GEMM's bf16 output (one bf16 unit of ``|s| <= |q16||b16|``).
    """
    def norms(x: torch.Tensor, x16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x16.double().norm(dim=1), (x.double() - x16.double()).norm(dim=1)

    nb, rb = norms(bank, bank16)
    nq, rq = norms(queries, query16)
    gamma = dim * _FP32_UNIT / (1 - dim * _FP32_UNIT)
    big_b, big_rb = nb.max(), rb.max()
    bound = nq * big_rb + rq * big_b + rq * big_rb + (gamma + _BF16_UNIT) * nq * big_b
    return (bound * (1 + 1e-6)).cpu().numpy()


def _rerank(bank: np.ndarray, queries: np.ndarray, cand_i: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (float64) similarities of each query's candidates; the ``k`` best, ties by lower index."""
    sims = np.empty((queries.shape[0], k), np.float32)
    idx = np.empty((queries.shape[0], k), np.int64)
    tb, tq = torch.from_numpy(bank), torch.from_numpy(queries)
    for i in range(0, queries.shape[0], 64):
        ci = cand_i[i : i + 64]
        cand = tb[torch.from_numpy(ci)].double()  # (q, width, D)
        s = torch.bmm(cand, tq[i : i + 64].double().unsqueeze(2)).squeeze(2).numpy()
        order = np.lexsort((ci, -s), axis=-1)[:, :k]
        sims[i : i + 64] = np.take_along_axis(s, order, 1)
        idx[i : i + 64] = np.take_along_axis(ci, order, 1)
    return sims, idx
