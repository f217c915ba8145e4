"""Image sources: digits, image folders, and the real CIFAR-10 / MNIST files (shared_data).

The file-based sources (ImageNet layout, file lists, flat folders, Parquet/Arrow) are in
``test_file_sources.py``.
"""

from __future__ import annotations

from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from sslkit.data.file_sources import folder_source
from sslkit.data.sources import cifar10_source, digits_source, mnist_source, open_source
from sslkit.errors import UserError
from tests.data.helpers import synthetic_image


def test_digits_split_shapes_and_keys() -> None:
    train, test = digits_source("train"), digits_source("test", size=16)
    assert len(train) == 1437 and len(test) == 360
    train_samples, test_samples = list(train), list(test)
    keys = [k for k, _, _ in train_samples + test_samples]
    assert len(set(keys)) == 1797 and keys[0].startswith("digits-train-")
    key, image, label = train_samples[0]
    assert image.mode == "L" and image.size == (32, 32) and 0 <= label <= 9
    assert test_samples[0][1].size == (16, 16)
    # stratified: each class keeps about 20% of its images in test
    per_class = Counter(label for _, _, label in test_samples)
    assert set(per_class) == set(range(10)) and min(per_class.values()) >= 35
    # nearest upsampling keeps the 8x8 grid exactly: every 4x4 block is constant, full range used
    pixels = np.asarray(image)
    assert (pixels == np.kron(pixels[::4, ::4], np.ones((4, 4), dtype=np.uint8))).all()
    assert max(np.asarray(im).max() for _, im, _ in train_samples[:50]) == 255
    assert [k for k, _, _ in digits_source("train")][:5] == keys[:5]  # stable


def test_folder_with_classes_gives_paths_and_labels(tmp_path: Path) -> None:
    for i, cls in enumerate(["cat", "dog", "cat", "bird"]):
        (tmp_path / "labelled" / cls).mkdir(parents=True, exist_ok=True)
        synthetic_image(i).save(tmp_path / "labelled" / cls / f"img.{i}.png")
    source = folder_source(tmp_path / "labelled")
    assert source.class_names == ("bird", "cat", "dog") and len(source) == 4 and source.shuffle_window is None
    samples = list(source)
    assert [(k, label) for k, _, label in samples] == [
        ("bird_img_3", 0), ("cat_img_0", 1), ("cat_img_2", 1), ("dog_img_1", 2)
    ]
    assert samples[1][1] == str(tmp_path / "labelled" / "cat" / "img.0.png")  # the writer reads the file


def test_folder_uses_split_subfolder(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    synthetic_image(0).save(tmp_path / "test" / "x.png")
    assert [k for k, _, _ in open_source("folder", root=tmp_path, split="test")] == ["x"]


@pytest.mark.shared_data
def test_cifar10_matches_sources_md(shared_data: Path) -> None:
    train = cifar10_source(shared_data / "cifar10", "train")
    test = cifar10_source(shared_data / "cifar10", "test")
    assert len(train) == 50_000 and len(test) == 10_000
    assert train.class_names[:3] == ("airplane", "automobile", "bird")
    counts = Counter(label for _, _, label in test)
    assert counts == {c: 1000 for c in range(10)}
    first = list(islice(train, 10_000))
    assert Counter(label for _, _, label in first) == dict(
        enumerate([1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]))
    key, image, _ = first[123]
    assert key == "cifar10-train-000123" and image.mode == "RGB" and image.size == (32, 32)


@pytest.mark.shared_data
def test_mnist_matches_sources_md(shared_data: Path) -> None:
    train = mnist_source(shared_data / "mnist", "train")
    test = mnist_source(shared_data / "mnist", "test")
    assert len(train) == 60_000 and len(test) == 10_000
    labels = [label for _, _, label in test]
    assert [labels.count(c) for c in range(10)] == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    first = list(islice(train, 5))
    assert [label for _, _, label in first] == [5, 0, 4, 1, 9]
    assert first[0][0] == "mnist-train-000000" and first[0][1].mode == "L" and first[0][1].size == (28, 28)


def test_unknown_source_and_missing_root() -> None:
    with pytest.raises(UserError, match="unknown source"):
        open_source("imagenet1k", root="/nowhere")
    with pytest.raises(UserError, match="--root"):
        open_source("cifar10")
    with pytest.raises(UserError, match="no such file"):
        open_source("folder", root="/nowhere")
