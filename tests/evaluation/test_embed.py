"""``sslkit embed``: the same rows as ``sslkit eval extract``, with keys and labels, in both formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslkit.cli import main as sslkit_main
from sslkit.data.manifest import MANIFEST_NAME
from sslkit.evaluation import read_embeddings
from sslkit.evaluation.cli import main as eval_main
from sslkit.evaluation.embed import keys_path
from sslkit.evaluation.feature_store import load_features
from sslkit.objectives.simclr import SimCLR

COMMON = ["--input-size", "16", "--batch-size", "8", "--num-workers", "0", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = SimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs={"img_size": 16, "patch_size": 4, "depth": 1},
                   proj_hidden_dim=32, proj_output_dim=16)
    path = tmp_path_factory.mktemp("embed") / "simclr.ckpt"
    torch.save({"sslkit_objective": "sslkit.objectives.simclr.SimCLR", "hyper_parameters": dict(model.hparams),
                "state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two class folders of 3 generated JPEGs each, plus one corrupt file."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / name / f"{i}.jpg")
    (root / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_shards_match_eval_extract(ckpt: Path, digit_shards: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"embeddings{suffix}"
    args = ["embed", "--ckpt", str(ckpt), "--input", str(digit_shards), "--out", str(out), "--pool", "mean", *COMMON]
    assert sslkit_main(args) == 0
    feats, keys, labels = read_embeddings(out)

    source = ["--ckpt", str(ckpt), "--train-shards", str(digit_shards), "--val-shards", str(digit_shards)]
    assert eval_main(["extract", "--features", str(tmp_path / "f"), "--pool", "mean", *source, *COMMON]) == 0
    ref = load_features(tmp_path / "f" / "train")
    assert keys == list(ref.keys) and len(set(keys)) == len(keys)
    np.testing.assert_array_equal(labels, ref.labels)
    np.testing.assert_allclose(feats, ref.feats, rtol=0, atol=1e-6)
    assert feats.dtype == np.float32 and feats.shape[1] == 192
    manifest = json.loads((digit_shards / MANIFEST_NAME).read_text())
    assert len(keys) == manifest["num_samples"]


def test_image_folder(ckpt: Path, jpeg_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "e.npy"
    assert sslkit_main(["embed", "--ckpt", str(ckpt), "--input", str(jpeg_folder), "--out", str(out), *COMMON]) == 0
    feats, keys, labels = read_embeddings(out)
    assert keys_path(out).read_text().splitlines()[0] == "key,label"
    assert keys == ["cat_0", "cat_1", "cat_2", "dog_0", "dog_1", "dog_2"]
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    err = capsys.readouterr().err
    assert "skipped 1 unreadable images" in err and "broken.jpg" in err
    # a flat folder: unlabeled (-1), keyed by file name; the same image gives the same row
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "x.jpg").write_bytes((jpeg_folder / "dog" / "1.jpg").read_bytes())
    assert sslkit_main(["embed", "--ckpt", str(ckpt), "--input", str(flat), "--out", str(tmp_path / "f.parquet"),
                        *COMMON]) == 0
    flat_feats, flat_keys, flat_labels = read_embeddings(tmp_path / "f.parquet")
    assert flat_keys == ["x"] and flat_labels.tolist() == [-1]
    np.testing.assert_allclose(flat_feats[0], feats[4], rtol=0, atol=1e-5)


def test_missing_input_is_one_line(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "e.npy"
    assert sslkit_main(["embed", "--ckpt", str(ckpt), "--input", str(tmp_path / "nope"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--input" in err and "nope" in err and "does not exist" in err
    assert not out.exists()
