"""Feature extraction: pooling options, and resumable on-disk extraction without duplicated rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch

from sslkit.evaluation.feature_store import extract_to_disk, is_complete, load_features, read_meta
from sslkit.evaluation.features import Pooling, extract_features


@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4, depth=2, num_classes=0).eval()


def make_batches(num: int, batch_size: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(num, 3, 32, 32, generator=g), torch.randint(0, 10, (num,), generator=g)
    return [
        {"image": x[i : i + batch_size], "label": y[i : i + batch_size],
         "key": [f"s{j:05d}" for j in range(i, min(i + batch_size, num))]}
        for i in range(0, num, batch_size)
    ]


class Interrupted(Exception):
    pass


def interrupted_after(batches: list[dict], num_batches: int):
    yield from batches[:num_batches]
    raise Interrupted


class CountingModel(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.images_seen = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images_seen += x.shape[0]
        return self.inner(x)


def test_pooling_modes_on_a_vit(vit):
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        tokens = vit.forward_features(x)  # (B, 1 + 64, D), final norm applied
        pooled, cls = Pooling("pooled")(vit, x), Pooling("cls")(vit, x)
        mean, both = Pooling("mean")(vit, x), Pooling("cls_mean")(vit, x)
        last2 = Pooling("cls", last_k=2)(vit, x)
    torch.testing.assert_close(pooled, tokens[:, 0])
    torch.testing.assert_close(cls, tokens[:, 0])
    torch.testing.assert_close(mean, tokens[:, 1:].mean(1))
    torch.testing.assert_close(both, torch.cat([cls, mean], -1))
    assert last2.shape == (3, 2 * vit.num_features)
    torch.testing.assert_close(last2[:, vit.num_features :], cls, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(last2[:, : vit.num_features], cls)  # block 1 differs from block 2


def test_pooling_on_a_cnn_has_no_class_token():
    cnn = timm.create_model("resnet18", num_classes=0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(Pooling("mean")(cnn, x), cnn(x))
        with pytest.raises(ValueError, match="class token"):
            Pooling("cls")(cnn, x)
    with pytest.raises(ValueError):
        Pooling("pooled", last_k=2)


def test_extraction_resumes_without_duplicating_rows(vit, tmp_path):
    batches = make_batches(70, batch_size=8)
    identity = {"checkpoint": {"path": "x.ckpt", "sha256": "0" * 64}, "preprocessing": {"size": (32, 32)}}
    reference = extract_features(vit, batches)
    out = tmp_path / "train"
    with pytest.raises(Interrupted):  # dies after 5 batches = 40 rows; chunks of 16 commit 32
        extract_to_disk(vit, interrupted_after(batches, 5), out, identity, chunk_size=16, progress=False)
    assert not is_complete(out)
    counting = CountingModel(vit)
    extract_to_disk(counting, batches, out, identity, chunk_size=16, progress=False)
    assert counting.images_seen == 70 - 32  # committed rows were not recomputed
    stored = load_features(out)
    assert stored.keys == reference.keys and len(set(stored.keys)) == 70
    np.testing.assert_array_equal(stored.labels, reference.labels)
    np.testing.assert_allclose(stored.feats, reference.feats, rtol=1e-5, atol=1e-5)
    assert isinstance(stored.feats, np.memmap)
    meta = read_meta(out)
    assert meta["num_samples"] == 70 and meta["identity"]["checkpoint"]["sha256"] == "0" * 64
    assert meta["identity"]["pooling"] == {"mode": "pooled", "last_k": 1}
    assert not (out / "partial").exists()
    # Complete: a rerun does nothing; other settings refuse to mix with what is there.
    counting.images_seen = 0
    extract_to_disk(counting, batches, out, identity, chunk_size=16, progress=False)
    assert counting.images_seen == 0
    with pytest.raises(RuntimeError, match="other settings"):
        extract_to_disk(vit, batches, out, identity, Pooling("mean"), progress=False)


def test_resume_refuses_a_different_order_or_identity(vit, tmp_path):
    batches = make_batches(40, batch_size=8)
    identity = {"checkpoint": {"sha256": "a"}}
    out = tmp_path / "val"
    with pytest.raises(Interrupted):
        extract_to_disk(vit, interrupted_after(batches, 3), out, identity, chunk_size=8, progress=False)
    with pytest.raises(RuntimeError, match="different settings"):
        extract_to_disk(vit, batches, out, {"checkpoint": {"sha256": "b"}}, chunk_size=8, progress=False)
    with pytest.raises(RuntimeError, match="replay"):
        extract_to_disk(vit, batches[::-1], out, identity, chunk_size=8, progress=False)
    state = json.loads((out / "partial" / "state.json").read_text())
    assert state["num_rows"] == 24
