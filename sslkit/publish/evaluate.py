"""kNN on the *published* weights, so the number in the model card is reproducible from the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslkit.evaluation.knn import DEFAULT_KS, DEFAULT_TEMPS, knn_classify
from sslkit.evaluation.results import checkpoint_record, read_result, write_result
from sslkit.run_record import dataset_from_manifest


def knn_on_published(folder: Path, options: Any, checkpoint: Path, pre: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Load ``folder`` with :func:`sslkit.load_pretrained`, extract train/val features with the card's
    preprocessing, run the standard weighted kNN sweep and write ``folder/eval/knn.json``.

    Args:
        folder: The (staged) published folder, with weights, config and ``SHA256SUMS`` not yet written.
        options: ``train_shards``, ``val_shards``, ``batch_size``, ``num_workers``.
        checkpoint: The source checkpoint (recorded as provenance).
        pre: Resolved preprocessing (``input_size``, ``resize``, ``mean``, ``std``).
    """
    from sslkit.data import build_eval_loader
    from sslkit.evaluation.features import extract_features
    from sslkit.publish.loading import load_pretrained
    from sslkit.transforms.views import EvalTransform

    model = load_pretrained(folder, verify=False)  # just written here; sums come after
    transform = EvalTransform(pre["input_size"], pre["resize"], pre["mean"], pre["std"])
    feats = {
        split: extract_features(model, build_eval_loader(shards, transform, options.batch_size, options.num_workers))
        for split, shards in (("train", options.train_shards), ("val", options.val_shards))
    }
    numbers = knn_classify(feats["train"].feats, feats["train"].labels, feats["val"].feats, feats["val"].labels,
                           DEFAULT_KS, DEFAULT_TEMPS)
    settings = {"ks": list(DEFAULT_KS), "temps": list(DEFAULT_TEMPS), "index": {"kind": "flat"},
                "normalise": "l2", "vote": "exp(sim/T)"}
    features = {
        split: {"shards": str(shards), "num_samples": len(feats[split]),
                "dataset": getattr(dataset_from_manifest(shards), "name", None),
                "preprocessing": {"transform": "sslkit.transforms.views.EvalTransform",
                                  **{k: pre[k] for k in ("input_size", "resize", "mean", "std")}}}
        for split, shards in (("train", options.train_shards), ("val", options.val_shards))
    }
    out, _ = write_result(folder / "eval" / "knn.json", "knn", numbers, checkpoint=checkpoint_record(checkpoint),
                          weights="model.safetensors", features=features, settings=settings)
    return out, read_result(out)
