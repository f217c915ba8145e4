"""The numpy engine's tiled search (heaps initialised from a thresholded first block) and the argmax class
ranking equal brute-force references exactly, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from sslkit.evaluation import search
from sslkit.evaluation.knn import IndexSpec, rank_classes, search_neighbours


def integer_data(rng, num_bank, num_queries, dim, levels):
    """Small-integer features: every fp32 dot product is exact, and equal similarities are common."""
    bank = rng.integers(-levels, levels + 1, (num_bank, dim)).astype(np.float32)
    bank[rng.choice(num_bank, num_bank // 10, replace=False)] = bank[0]  # exact duplicates of one row
    queries = rng.integers(-levels, levels + 1, (num_queries, dim)).astype(np.float32)
    return bank, queries


@pytest.fixture(params=[(64, 512, 128), (7, 96, 40)], ids=["first-block-threshold", "small-blocks"])
def small_tiles(request, monkeypatch):
    """Tiles small enough that a few hundred rows cross query tiles, the first block and partial blocks;
    (7, 96, 40) with k > 96 / 8 also takes the no-threshold fallback of ``_init_heaps``."""
    query_block, first_block, bank_block = request.param
    monkeypatch.setattr(search, "_CPU_QUERY_BLOCK", query_block)
    monkeypatch.setattr(search, "_FIRST_BLOCK", first_block)
    monkeypatch.setattr(search, "_BANK_BLOCK", bank_block)


@pytest.mark.parametrize("levels", [1, 3])
@pytest.mark.parametrize("k", [1, 13, 37])
def test_gemm_topk_values_and_neighbours_are_exact(small_tiles, levels, k):
    rng = np.random.default_rng(10 * levels + k)
    bank, queries = integer_data(rng, 1003, 150, 6, levels)
    exact = queries.astype(np.float64) @ bank.astype(np.float64).T
    sims, idx = search.gemm_topk(bank, queries, k)
    want = -np.sort(-exact, axis=1)[:, :k]
    np.testing.assert_array_equal(sims, want)  # same k values, descending
    np.testing.assert_array_equal(np.take_along_axis(exact, idx, 1), sims)  # each index has its similarity
    assert all(len(set(row)) == k for row in idx.tolist())
    # Everything strictly above the k-th value is in the result.
    for row, found in zip(exact, idx):
        assert set(np.flatnonzero(row > row[found].min())) <= set(found.tolist())


@pytest.mark.parametrize("k", [5, 37])
def test_search_neighbours_numpy_engine_equals_lexsort_reference(small_tiles, k):
    rng = np.random.default_rng(k)
    bank, queries = integer_data(rng, 1003, 150, 6, 1)
    exact = queries.astype(np.float64) @ bank.astype(np.float64).T
    sims, idx = search_neighbours(bank, queries, k, spec=IndexSpec(engine="numpy", precision="fp32"))
    want = np.stack([np.lexsort((np.arange(len(bank)), -row))[:k] for row in exact])
    np.testing.assert_array_equal(idx, want)  # ties by lower bank index, also across the k boundary
    np.testing.assert_array_equal(sims, np.take_along_axis(exact, want, 1))


def test_rank_classes_equals_stable_sort_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = rng.integers(0, 4, (int(rng.integers(1, 30)), int(rng.integers(1, 12)))) * rng.choice([1.0, 0.5], 1)
        for top in (1, 3, 5, 12):
            order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
            want = np.where(np.take_along_axis(scores, order, 1) > 0, order, -1)
            np.testing.assert_array_equal(rank_classes(scores, top), want)
