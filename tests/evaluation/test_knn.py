"""kNN: FAISS sweep equals a brute-force numpy weighted kNN exactly, for every (k, T)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslkit.evaluation.knn import (
    DEFAULT_KS,
    DEFAULT_TEMPS,
    IndexSpec,
    knn_classify,
    knn_key,
    knn_predict,
    search_neighbours,
    l2_normalize,
)
from sslkit.evaluation.search import bf16_search


def brute_force_knn(train, train_labels, query, k, temperature, num_classes, top=5):
    """Reference: full similarity matrix, stable sort, explicit per-class sums (float64)."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    predictions = np.full((len(query), top), -1)
    for q, sims in enumerate(query.astype(np.float64) @ train.astype(np.float64).T):
        nearest = sorted(range(len(train)), key=lambda i: (-sims[i], i))[:k]
        scores = np.zeros(num_classes)
        for i in nearest:
            scores[train_labels[i]] += np.exp(sims[i] / temperature)
        ranked = sorted(range(num_classes), key=lambda c: (-scores[c], c))[:top]
        predictions[q] = [c if scores[c] > 0 else -1 for c in ranked]
    return predictions


def clustered(rng, num, num_classes=10, dim=32, spread=1.5):
    centers = np.random.default_rng(123).normal(size=(num_classes, dim))  # same classes every call
    labels = rng.integers(0, num_classes, num)
    return (centers[labels] + spread * rng.normal(size=(num, dim))).astype(np.float32), labels


# Every exact search path: numpy's or torch's GEMM + FAISS heaps, FAISS's own search, bf16 candidates + re-rank.
PATHS = [IndexSpec(engine="numpy", precision="fp32"), IndexSpec(engine="torch", precision="fp32"),
         IndexSpec(engine="faiss", precision="fp32"), IndexSpec(precision="bf16")]
PATH_IDS = ["numpy-fp32", "torch-fp32", "faiss-fp32", "bf16-rerank"]


@pytest.mark.parametrize("spec", PATHS, ids=PATH_IDS)
def test_sweep_equals_brute_force_exactly(spec):
    rng = np.random.default_rng(0)
    train, train_labels = clustered(rng, 1500)
    query, query_labels = clustered(rng, 120)
    ours = knn_predict(train, train_labels, query, num_classes=10, index=spec)
    result = knn_classify(train, train_labels, query, query_labels, num_classes=10, index=spec)
    for k in DEFAULT_KS:
        for t in DEFAULT_TEMPS:
            ref = brute_force_knn(train, train_labels, query, k, t, 10)
            np.testing.assert_array_equal(ours[(k, t)], ref, err_msg=f"k={k} T={t}")
            top1 = 100.0 * np.mean(ref[:, 0] == query_labels)
            top5 = 100.0 * np.mean((ref == query_labels[:, None]).any(1))
            assert result[knn_key(k, t, "top1")] == top1
            assert result[knn_key(k, t, "top5")] == top5
    # The data is neither trivial nor hopeless, so a wrong vote would show in the accuracy.
    assert 20.0 < result[knn_key(20, 0.07, "top1")] < 95.0


def test_accepts_torch_and_unnormalised_inputs():
    rng = np.random.default_rng(1)
    train, train_labels = clustered(rng, 400)
    query, query_labels = clustered(rng, 50)
    a = knn_classify(train, train_labels, query, query_labels, ks=(20,), temps=(0.07,))
    b = knn_classify(
        torch.from_numpy(train) * 7.0, torch.from_numpy(train_labels),
        torch.from_numpy(query) * 0.1, torch.from_numpy(query_labels), ks=(20,), temps=(0.07,),
    )
    assert a[knn_key(20, 0.07, "top1")] == b[knn_key(20, 0.07, "top1")]


@pytest.mark.parametrize("spec", PATHS, ids=PATH_IDS)
def test_ties_break_to_lower_bank_index_even_across_the_search_boundary(spec):
    rng = np.random.default_rng(2)
    query = rng.normal(size=(1, 8)).astype(np.float32)
    far = rng.normal(size=(50, 8)).astype(np.float32)
    far -= 3 * query  # all clearly less similar than the query itself
    # Five identical copies of the query at scattered indices: a tie group of 5 cut by k=3.
    bank = far.copy()
    dup_at = [40, 3, 27, 11, 49]
    bank[dup_at] = query
    labels = np.zeros(50, dtype=np.int64)
    labels[dup_at] = [4, 1, 3, 2, 5]
    sims, idx = search_neighbours(l2_normalize(bank), l2_normalize(query), 3, spec=spec)
    assert idx[0].tolist() == [3, 11, 27]
    predictions = knn_predict(bank, labels, query, ks=(3,), temps=(0.1,), num_classes=6, index=spec)
    # Equal scores for classes 1, 3, 2: ranked by class index; unvoted classes are not predictions.
    assert predictions[(3, 0.1)][0].tolist() == [1, 2, 3, -1, -1]


def test_ivf_reports_recall_and_stays_close_to_exact():
    rng = np.random.default_rng(3)
    train, train_labels = clustered(rng, 4000, dim=16)
    query, query_labels = clustered(rng, 200, dim=16)
    exact = knn_classify(train, train_labels, query, query_labels, ks=(20,), temps=(0.07,))
    ivf = knn_classify(
        train, train_labels, query, query_labels, ks=(20,), temps=(0.07,),
        index=IndexSpec("ivf", nlist=16, nprobe=16),
    )
    assert ivf["ivf_recall@20"] == 1.0  # probing every cell is exhaustive
    assert ivf[knn_key(20, 0.07, "top1")] == exact[knn_key(20, 0.07, "top1")]
    partial = knn_classify(
        train, train_labels, query, query_labels, ks=(20,), temps=(0.07,),
        index=IndexSpec("ivf", nlist=64, nprobe=1),
    )
    assert 0.0 < partial["ivf_recall@20"] < 1.0


def test_rejects_unknown_labels():
    feats = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="unknown labels"):
        knn_classify(feats, np.array([0, 1, -1, 0]), feats, np.array([0, 1, 1, 0]))


def test_bf16_candidates_stay_exact_where_the_bf16_order_is_wrong(monkeypatch):
    """Near-duplicates that bf16 cannot order: the error certificate sends them to wider or exact searches."""
    from sslkit.evaluation import search

    rng = np.random.default_rng(4)
    base = rng.normal(size=(40, 64))
    bank = np.repeat(base, 50, axis=0) + 0.05 * rng.normal(size=(2000, 64))  # 40 clusters of 50 near-copies
    queries = base[:30] + 0.05 * rng.normal(size=(30, 64))
    bank, queries = l2_normalize(bank), l2_normalize(queries)
    exact = queries.astype(np.float64) @ bank.astype(np.float64).T
    want = [sorted(np.lexsort((np.arange(len(bank)), -row))[:21].tolist()) for row in exact]

    sims16, idx16, uncertified = bf16_search(bank, queries, 21, margin=4)
    assert uncertified > 0
    assert [sorted(row.tolist()) for row in idx16] == want
    np.testing.assert_allclose(sims16, np.take_along_axis(exact, idx16, 1), rtol=0, atol=1e-6)
    # Without the bound the same candidates are taken at face value, and some query gets a wrong neighbour.
    monkeypatch.setattr(search, "_bf16_error_bound", lambda b, b16, q, q16, d: np.zeros(q.shape[0]))
    _, naive, _ = bf16_search(bank, queries, 21, margin=4)
    assert [sorted(row.tolist()) for row in naive] != want


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_search_equals_brute_force(precision):
    rng = np.random.default_rng(5)
    train, train_labels = clustered(rng, 3000)
    query, _ = clustered(rng, 200)
    ours = knn_predict(train, train_labels, query, num_classes=10, index=IndexSpec(precision=precision, device="cuda"))
    for k in (20, 200):
        np.testing.assert_array_equal(ours[(k, 0.07)], brute_force_knn(train, train_labels, query, k, 0.07, 10))
