"""Evaluation of frozen backbones: feature extraction, FAISS kNN, linear probes, RankMe, reports."""

from sslkit.evaluation.equivariance import procrustes_residual, rotation_prediction_accuracy, transform_procrustes_residual
from sslkit.evaluation.feature_store import extract_to_disk, load_features
from sslkit.evaluation.features import Features, Pooling, extract_features, iter_features
from sslkit.evaluation.knn import DEFAULT_KS, DEFAULT_TEMPS, IndexSpec, knn_classify, knn_key, knn_predict
from sslkit.evaluation.linear_probe import LinearProbeGrid, linear_probe, logistic_regression_probe
from sslkit.evaluation.rankme import rankme

__all__ = [
    "DEFAULT_KS", "DEFAULT_TEMPS", "Features", "IndexSpec", "LinearProbeGrid", "Pooling", "extract_features",
    "extract_to_disk", "iter_features", "knn_classify", "knn_key", "knn_predict", "linear_probe", "load_features",
    "logistic_regression_probe", "procrustes_residual", "rankme", "rotation_prediction_accuracy",
    "transform_procrustes_residual",
]
