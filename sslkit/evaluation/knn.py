"""Weighted k-nearest-neighbour classification on L2-normalised features, searched with FAISS.

The vote is the standard one of InstDisc (Wu et al., 2018) as used by DINO's ``eval_knn.py`` and
solo-learn: each of the ``k`` nearest training features (cosine similarity ``s``) votes for its label
with weight ``exp(s / T)``; a class scores the sum of its votes. One search for the largest ``k``
serves the whole ``(k, T)`` sweep, since the ``k`` nearest are a prefix of the ``k_max`` nearest.

Determinism, so that results equal a brute-force reference exactly rather than "almost":
- neighbours are ordered by similarity, descending, ties by lower training index (a stable sort);
  a tie that straddles the ``k_max`` boundary of the FAISS result is resolved by an exact rescan of
  that query;
- classes are ranked by score, descending, ties by lower class index; a class that received no vote
  (score 0) never counts as a hit, so top-5 with fewer than 5 voting classes is not padded by chance.
Train and query sets are different sets: nothing is excluded from the bank.

Which GEMM computes the similarities (FAISS's BLAS, torch's, bf16 candidates with an exact re-rank, the
GPU) is chosen per machine by :mod:`sslkit.evaluation.search`; every choice returns the same neighbours.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from sslkit.evaluation.search import faiss_flat_search, flat_search

ArrayLike = np.ndarray | torch.Tensor

DEFAULT_KS: tuple[int, ...] = (10, 20, 100, 200)
DEFAULT_TEMPS: tuple[float, ...] = (0.07, 0.1)


def knn_key(k: int, temperature: float, metric: str) -> str:
    """Name of one sweep entry in a result dict, e.g. ``k20_t0.07_top1``."""
    return f"k{k}_t{temperature:g}_{metric}"


def to_numpy(x: ArrayLike, dtype: type | None = None) -> np.ndarray:
    """Host numpy view (or copy) of a tensor or array, optionally cast."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(dtype, copy=False) if dtype is not None else x


def l2_normalize(feats: ArrayLike) -> np.ndarray:
    """Row-wise L2-normalised float32, C-contiguous copy of ``feats`` ``(N, D)`` (FAISS's layout)."""
    x = np.array(to_numpy(feats, np.float32), dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    faiss.normalize_L2(x)
    return x


@dataclass(frozen=True)
class IndexSpec:
    """Which FAISS index holds the bank.

    Attributes:
        kind: ``"flat"`` (exact inner product) or ``"ivf"`` (inverted lists of exact vectors; for banks
            of ~1M and more, approximate).
        nlist: IVF cells; default ``4 * sqrt(N)``.
        nprobe: IVF cells visited per query; more is slower and closer to exact.
        engine: exact search's GEMM: ``faiss``, ``torch`` or ``auto`` (see :mod:`sslkit.evaluation.search`).
        precision: ``fp32``, ``bf16`` (candidates + exact re-rank: same results) or ``auto`` (bf16 where the
            hardware multiplies bf16 natively).
        device: where the exact search's GEMM runs (``cuda`` searches on the GPU).
    """

    kind: str = "flat"
    nlist: int | None = None
    nprobe: int = 32
    engine: str = "auto"
    precision: str = "auto"
    device: str = "cpu"


def build_index(bank: np.ndarray, spec: IndexSpec = IndexSpec(), seed: int = 0) -> faiss.Index:
    """FAISS inner-product index over a normalised float32 bank ``(N, D)``."""
    num_bank, dim = bank.shape
    if spec.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif spec.kind == "ivf":
        nlist = spec.nlist or max(1, int(4 * np.sqrt(num_bank)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # k-means on a sample is enough for the coarse quantiser (FAISS warns below 39 per cell).
        rng = np.random.default_rng(seed)
        num_train = min(num_bank, 256 * nlist)
        sample = bank[np.sort(rng.choice(num_bank, num_train, replace=False))]
        index.train(sample)
        index.nprobe = min(spec.nprobe, nlist)
    else:
        raise ValueError(f"unknown index kind {spec.kind!r}; expected 'flat' or 'ivf'")
    index.add(bank)
    return index


def search_neighbours(
    bank: np.ndarray, queries: np.ndarray, k: int, index: faiss.Index | None = None, spec: IndexSpec = IndexSpec()
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar bank rows per query, deterministically ordered.

    Args:
        bank: normalised float32 ``(N, D)``.
        queries: normalised float32 ``(Q, D)``.
        k: neighbours per query; clipped to ``N``.
        index: a prebuilt FAISS index over ``bank``; when ``None``, ``spec`` says how to search (exact flat
            search on the machine's fastest engine by default).
        spec: the search when no index is given.

    Returns:
        ``(sims, idx)``, both ``(Q, k)``: similarities descending, ties by lower bank index.
    """
    num_bank = bank.shape[0]
    k = min(k, num_bank)
    flat = index is None and spec.kind == "flat"
    exact = flat or isinstance(index, faiss.IndexFlat)
    # One extra neighbour tells whether a tie group is cut by the k boundary.
    k_search = min(k + 1, num_bank) if exact else k
    if flat:
        sims, idx = flat_search(bank, queries, k_search, spec.engine, spec.precision, spec.device)
    else:
        index = build_index(bank, spec) if index is None else index
        sims, idx = faiss_flat_search(index, queries, k_search)
    if np.any(idx < 0):  # IVF with too few probed cells: fewer than k candidates.
        sims = np.where(idx < 0, -np.inf, sims).astype(np.float32)
    sims, idx = _tie_stable_order(sims, idx)
    if exact and k_search > k:
        for q in np.flatnonzero(sims[:, k - 1] == sims[:, k]):
            sims[q], idx[q] = _exact_row(bank, queries[q], k_search)
    return sims[:, :k], idx[:, :k]


def _tie_stable_order(sims: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by similarity descending, ties by lower bank index.

    Every engine returns rows sorted by similarity already, so only rows out of that order (equal
    similarities in index order other than ascending) are re-sorted: a full lexsort of every row cost
    ~0.1 s per 4,000 x 200 search.
    """
    sims, idx = np.array(sims, copy=True), np.array(idx, copy=True)
    later, earlier = sims[:, 1:], sims[:, :-1]
    wrong = (later > earlier) | ((later == earlier) & (idx[:, 1:] < idx[:, :-1]))
    rows = np.flatnonzero(wrong.any(axis=1))
    if rows.size:
        order = np.lexsort((idx[rows], -sims[rows]), axis=-1)
        sims[rows], idx[rows] = np.take_along_axis(sims[rows], order, 1), np.take_along_axis(idx[rows], order, 1)
    return sims, idx


def _exact_row(bank: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = bank @ query  # (N,)
    order = np.lexsort((np.arange(sims.shape[0]), -sims))[:k]
    return sims[order], order


def vote(
    sims: np.ndarray, neighbour_labels: np.ndarray, temperature: float, num_classes: int
) -> np.ndarray:
    """Class scores ``(Q, C)`` float64: per class, the sum of ``exp(sim / T)`` over its neighbours."""
    num_queries, k = sims.shape
    weights = np.exp(sims.astype(np.float64) / temperature)
    weights[~np.isfinite(sims)] = 0.0  # missing IVF neighbours vote for nothing
    flat = (np.arange(num_queries)[:, None] * num_classes + neighbour_labels).ravel()
    scores = np.bincount(flat, weights=weights.ravel(), minlength=num_queries * num_classes)
    return scores.reshape(num_queries, num_classes)


def rank_classes(scores: np.ndarray, top: int) -> np.ndarray:
    """The ``top`` best classes per row ``(Q, top)``: score descending, ties by lower class index."""
    # ``top`` rounds of argmax (the first maximum: ties to the lower class) equal a stable descending sort's
    # first ``top`` columns, at a fraction of a full sort of every row (Q x C, C up to 1000s).
    scores = np.array(scores, dtype=np.float64, copy=True)
    rows = np.arange(scores.shape[0])
    order = np.empty((scores.shape[0], min(top, scores.shape[1])), np.int64)
    for r in range(order.shape[1]):
        first = np.argmax(scores, axis=1)
        best = scores[rows, first]
        scores[rows, first] = -np.inf
        # A class nobody voted for is no prediction: mark it -1 so it never equals a label.
        order[:, r] = np.where(best > 0, first, -1)
    return order


def topk_hits(predictions: np.ndarray, labels: np.ndarray, top: int) -> np.ndarray:
    """Boolean ``(Q,)``: the label is among the first ``top`` predicted classes."""
    return (predictions[:, :top] == labels[:, None]).any(axis=1)


def knn_predict(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    query_feats: ArrayLike,
    ks: Sequence[int] = DEFAULT_KS,
    temps: Sequence[float] = DEFAULT_TEMPS,
    num_classes: int | None = None,
    index: IndexSpec = IndexSpec(),
    top: int = 5,
) -> dict[tuple[int, float], np.ndarray]:
    """Ranked class predictions ``(Q, top)`` per ``(k, T)`` of the sweep, from one search.

    Features are L2-normalised here; pass raw backbone outputs. ``-1`` marks unvoted ranks.
    """
    bank, queries = l2_normalize(train_feats), l2_normalize(query_feats)
    bank_labels = _check_labels(train_labels, bank.shape[0], "train_labels")
    num_classes = num_classes or int(bank_labels.max()) + 1
    _, neighbour_labels, sims = _neighbours(bank, bank_labels, queries, max(ks), index)
    return {
        (k, t): rank_classes(vote(sims[:, :k], neighbour_labels[:, :k], t, num_classes), top)
        for k in ks
        for t in temps
    }


def _neighbours(
    bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray, k: int, spec: IndexSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sims, idx = search_neighbours(bank, queries, k, spec=spec)
    return idx, bank_labels[np.maximum(idx, 0)], sims


def _check_labels(labels: ArrayLike, n: int, name: str) -> np.ndarray:
    labels = to_numpy(labels).astype(np.int64).reshape(-1)
    if labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} entries for {n} feature rows")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} holds unknown labels (< 0); drop those rows first")
    return labels


def knn_classify(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    query_feats: ArrayLike,
    query_labels: ArrayLike,
    ks: Sequence[int] = DEFAULT_KS,
    temps: Sequence[float] = DEFAULT_TEMPS,
    num_classes: int | None = None,
    index: IndexSpec = IndexSpec(),
    recall_queries: int = 1000,
) -> dict[str, float]:
    """Weighted kNN top-1/top-5 accuracy (in %) for every ``(k, T)`` of the sweep.

    Args:
        train_feats: bank features ``(N, D)``, raw (normalised here).
        train_labels: ``(N,)`` ints ``>= 0``.
        query_feats: ``(Q, D)``.
        query_labels: ``(Q,)`` ints ``>= 0``.
        ks: neighbour counts; one search for ``max(ks)`` serves all.
        temps: vote temperatures ``T``.
        num_classes: defaults to ``max(label) + 1`` over both sets.
        index: exact flat (default) or IVF; IVF also reports ``ivf_recall@k`` against exact search
            on ``recall_queries`` queries.
        recall_queries: queries used to measure IVF recall.

    Returns:
        ``{knn_key(k, T, "top1"): %, knn_key(k, T, "top5"): %, ..., "num_bank", "num_queries",
        "search_s"}`` as plain floats.
    """
    bank, queries = l2_normalize(train_feats), l2_normalize(query_feats)
    bank_labels = _check_labels(train_labels, bank.shape[0], "train_labels")
    labels = _check_labels(query_labels, queries.shape[0], "query_labels")
    num_classes = num_classes or int(max(bank_labels.max(), labels.max(initial=0))) + 1
    start = time.perf_counter()
    idx, neighbour_labels, sims = _neighbours(bank, bank_labels, queries, max(ks), index)
    result: dict[str, float] = {"search_s": time.perf_counter() - start}
    for k in ks:
        for t in temps:
            scores = vote(sims[:, :k], neighbour_labels[:, :k], t, num_classes)
            predictions = rank_classes(scores, 5)
            result[knn_key(k, t, "top1")] = 100.0 * float(topk_hits(predictions, labels, 1).mean())
            result[knn_key(k, t, "top5")] = 100.0 * float(topk_hits(predictions, labels, 5).mean())
    if index.kind != "flat":
        result[f"ivf_recall@{max(ks)}"] = neighbour_recall(bank, queries, idx, recall_queries)
    result.update(num_bank=float(bank.shape[0]), num_queries=float(queries.shape[0]))
    return result


def neighbour_recall(
    bank: np.ndarray, queries: np.ndarray, approx_idx: np.ndarray, num_queries: int = 1000
) -> float:
    """Fraction of the exact top-``k`` neighbours an approximate search found (on a query sample)."""
    k = approx_idx.shape[1]
    sample = np.linspace(0, queries.shape[0] - 1, min(num_queries, queries.shape[0])).astype(int)
    _, exact = search_neighbours(bank, queries[sample], k)
    found = [np.intersect1d(a, e).size for a, e in zip(approx_idx[sample], exact)]
    return float(np.sum(found) / exact.size)
