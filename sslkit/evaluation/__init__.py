"""Evaluation of frozen backbones: feature extraction, FAISS kNN, linear probes, RankMe, reports.

The names load on first use (:func:`sslkit.faces.lazy_face`): ``sslkit eval --help`` imports no torch.
"""

from sslkit.faces import lazy_face

_EXPORTS = {
    **dict.fromkeys(("procrustes_residual", "rotation_prediction_accuracy", "transform_procrustes_residual"),
                    "equivariance"),
    **dict.fromkeys(("read_embeddings", "write_embeddings"), "embed"),
    **dict.fromkeys(("extract_to_disk", "load_features"), "feature_store"),
    **dict.fromkeys(("Features", "Pooling", "extract_features", "iter_features"), "features"),
    **dict.fromkeys(("DEFAULT_KS", "DEFAULT_TEMPS", "IndexSpec", "knn_classify", "knn_key", "knn_predict"), "knn"),
    **dict.fromkeys(("LinearProbeGrid", "linear_probe", "logistic_regression_probe"), "linear_probe"),
    "rankme": "rankme",
}
__all__ = lazy_face(__name__, _EXPORTS)
