"""``sslkit eval`` end to end: shards + checkpoint -> features -> kNN / probe JSON + markdown -> PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sslkit.data.writer import ShardWriter
from sslkit.errors import UserError
from sslkit.evaluation.cli import main
from sslkit.evaluation.feature_store import load_features
from sslkit.evaluation.results import file_sha256
from sslkit.objectives.simclr import SimCLR

PALETTE = np.array([[220, 30, 30], [30, 220, 30], [30, 30, 220]], dtype=np.float64)


def write_shards(out_dir, num: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    with ShardWriter(out_dir, prefix="split", max_samples_per_shard=16) as writer:
        for i in range(num):
            label = int(rng.integers(0, 3))
            pixels = np.clip(PALETTE[label] + 40 * rng.normal(size=(16, 16, 3)), 0, 255).astype(np.uint8)
            writer.write(f"img{i:04d}", Image.fromarray(pixels), label)
        writer.close(class_names=["r", "g", "b"])
    return str(out_dir)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_cli")
    torch.manual_seed(0)
    model = SimCLR(
        backbone="vit_tiny_patch16_224", backbone_kwargs={"img_size": 16, "patch_size": 4, "depth": 1},
        proj_hidden_dim=32, proj_output_dim=16,
    )
    ckpt = root / "simclr.ckpt"
    torch.save(
        {"sslkit_objective": "sslkit.objectives.simclr.SimCLR", "hyper_parameters": dict(model.hparams),
         "state_dict": model.state_dict()},
        ckpt,
    )
    train = write_shards(root / "train", 60, seed=1)
    val = write_shards(root / "val", 30, seed=2)
    source = ["--ckpt", str(ckpt), "--train-shards", train, "--val-shards", val, "--input-size", "16",
              "--batch-size", "8", "--num-workers", "0", "--chunk-size", "16", "--no-progress", "--device", "cpu"]
    return root, ckpt, source


def test_extract_knn_probe_report(setup):
    root, ckpt, source = setup
    features = root / "features"
    assert main(["extract", "--features", str(features), "--pool", "mean", *source]) == 0
    train = load_features(features / "train")
    assert train.feats.shape == (60, 192) and len(set(train.keys)) == 60

    # Same settings: reuses the features; knn and probe need no checkpoint once they exist.
    assert main(["knn", "--features", str(features), "--pool", "mean", *source, "--k", "5", "20", "--t", "0.07"]) == 0
    result = json.loads((features / "knn.json").read_text())
    assert result["protocol"] == "knn"
    assert result["checkpoint"] == {"path": str(ckpt.resolve()), "sha256": file_sha256(ckpt)}
    assert result["features"]["train"]["pooling"] == {"mode": "mean", "last_k": 1}
    assert result["features"]["val"]["preprocessing"]["input_size"] == 16
    assert result["numbers"]["k5_t0.07_top1"] > 80.0  # colours survive a random ViT's mean pool
    assert "| 20 |" in (features / "knn.md").read_text()

    probe_json = root / "probe.json"
    args = ["probe", "--features", str(features), "--lrs", "0.01", "0.1", "--wds", "0", "--epochs", "5",
            "--probe-batch-size", "16", "--out", str(probe_json)]
    assert main(args) == 0
    probe = json.loads(probe_json.read_text())
    assert probe["protocol"] == "linear_probe" and len(probe["numbers"]["grid"]) == 2
    assert probe["numbers"]["num_test"] == 30 and probe_json.with_suffix(".md").exists()

    log = root / "metrics.csv"
    log.write_text("epoch,step,val/knn_top1,train/loss\n0,10,40.0,\n0,10,,1.0\n1,20,55.5,\n")
    png = root / "report.png"
    assert main(["report", "--results", str(features / "knn.json"), str(probe_json), "--logs", str(log),
                 "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_knn_without_features_or_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(UserError, match="--ckpt"):
        main(["knn", "--features", str(tmp_path / "none")])
