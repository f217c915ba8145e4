"""Evaluation of frozen backbones: feature extraction, FAISS kNN, linear probes, RankMe, reports."""

from sslkit.evaluation.knn import DEFAULT_KS, DEFAULT_TEMPS, IndexSpec, knn_classify, knn_key, knn_predict

__all__ = ["DEFAULT_KS", "DEFAULT_TEMPS", "IndexSpec", "knn_classify", "knn_key", "knn_predict"]
