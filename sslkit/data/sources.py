"""Image sources for the shard writer: iterables of ``(key, image, label)``.

``image`` is what :func:`sslkit.data.encoding.encode_sample` takes: a file path (read, and passed
through when already JPEG/PNG/WebP, by the writer's workers), encoded bytes (Parquet/Arrow exports)
or a PIL image (CIFAR-10, MNIST, digits). Keys are unique within a dataset and stable across runs
(``cifar10-train-000123``). Grayscale images stay mode ``"L"``; the reader converts to RGB. Labels are
``None`` when unknown.

Listed sources (class folders, ImageNet, file lists, the in-memory sets) know every sample upfront,
so the writer shuffles them with one seeded permutation. Streamed sources (flat folders, listed
with ``os.scandir`` while writing; Parquet/Arrow exports, read row group by row group) set
``shuffle_window``: the writer shuffles them within a window of that many samples instead.
File-based sources live in :mod:`sslkit.data.file_sources`.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sslkit.errors import UserError

Sample = tuple[str, Any, "int | None"]  # (key, path | bytes | PIL image, label)

SOURCES = ("folder", "imagenet", "filelist", "parquet", "cifar10", "mnist", "digits")


@dataclass(frozen=True)
class ImageSource:
    """A re-iterable sequence of samples with its metadata.

    Attributes:
        name: ``"cifar10:train"``; written to the manifest's ``source``.
        class_names: label ``i`` is ``class_names[i]``; ``None`` when unlabeled or unnamed.
        num_samples: the count, ``None`` while a streamed listing has not ended.
        shuffle_window: ``None`` for a listed source (shuffled as a whole); for a streamed one, the
            default number of samples the writer shuffles within.
    """

    name: str
    class_names: tuple[str, ...] | None
    num_samples: int | None
    _samples: Callable[[], Iterator[Sample]]
    shuffle_window: int | None = None

    def __iter__(self) -> Iterator[Sample]:
        return self._samples()

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError(f"{self.name} is streamed: its length is unknown until the listing ends")
        return self.num_samples


def open_source(
    source: str,
    *,
    root: str | Path | None = None,
    split: str = "train",
    size: int = 32,
    labels: str | Path | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> ImageSource:
    """Build a source by name (one of :data:`SOURCES`); see each function."""
    from sslkit.data import file_sources

    if source == "digits":
        return digits_source(split, size=size)
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; choose from {', '.join(SOURCES)}")
    if root is None:
        raise UserError(f"--root is required for source {source!r}: the dataset folder or file")
    if not Path(root).exists():
        raise UserError(f"--root {root}: no such file or folder")
    if source == "folder":
        return file_sources.folder_source(root, split=split)
    if source == "imagenet":
        return file_sources.imagenet_source(root, split=split, labels=labels)
    if source == "filelist":
        return file_sources.filelist_source(root)
    if source == "parquet":
        return file_sources.parquet_source(root, image_column=image_column, label_column=label_column)
    if source == "cifar10":
        return cifar10_source(root, split)
    return mnist_source(root, split)


def cifar10_source(root: str | Path, split: str) -> ImageSource:
    """CIFAR-10 python batches under ``root`` (or ``root/cifar-10-batches-py``); split train/test."""
    folder = _cifar_folder(Path(root))
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    if split not in ("train", "test"):
        raise UserError(f"CIFAR-10 split must be train or test, got {split!r}")
    # pickle can run code; these are the trusted official batch files (checksums in SOURCES.md).
    meta = _unpickle(folder / "batches.meta")
    class_names = tuple(n.decode() for n in meta[b"label_names"])
    batches = [_unpickle(folder / name) for name in names]
    data = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = [int(y) for b in batches for y in b[b"labels"]]

    def samples() -> Iterator[Sample]:
        for i, (pixels, label) in enumerate(zip(data, labels)):
            yield f"cifar10-{split}-{i:06d}", Image.fromarray(np.ascontiguousarray(pixels)), label

    return ImageSource(f"cifar10:{split}", class_names, len(labels), samples)


def mnist_source(root: str | Path, split: str) -> ImageSource:
    """MNIST idx files (``.gz`` or raw) under ``root`` (or ``root/MNIST/raw``); split train/test."""
    if split not in ("train", "test"):
        raise UserError(f"MNIST split must be train or test, got {split!r}")
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_find(Path(root), f"{prefix}-images-idx3-ubyte"))
    labels = _read_idx(_find(Path(root), f"{prefix}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise UserError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")

    def samples() -> Iterator[Sample]:
        for i, (pixels, label) in enumerate(zip(images, labels)):
            yield f"mnist-{split}-{i:06d}", Image.fromarray(pixels), int(label)

    return ImageSource(f"mnist:{split}", tuple(str(d) for d in range(10)), len(labels), samples)


def digits_source(split: str, *, size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> ImageSource:
    """scikit-learn's bundled 8x8 digits (1,797 images), upsampled to ``size`` x ``size``.

    Values 0..16 are rescaled to 0..255. Upsampling is nearest-neighbour: the 8x8 grid is the
    data, and nearest keeps every pixel value exactly (bicubic would invent strokes and overshoot).
    The split is stratified and seeded (80/20, seed 0); keys keep the original index.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise UserError(f"digits split must be train or test, got {split!r}")
    digits = load_digits()
    index = np.arange(len(digits.target))
    train, test = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=digits.target)
    chosen = np.sort(train if split == "train" else test)
    pixels = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)

    def samples() -> Iterator[Sample]:
        for i in chosen:
            image = Image.fromarray(pixels[i]).resize((size, size), Image.Resampling.NEAREST)
            yield f"digits-{split}-{i:04d}", image, int(digits.target[i])

    return ImageSource(f"digits:{split}", tuple(str(d) for d in range(10)), len(chosen), samples)


def _cifar_folder(root: Path) -> Path:
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / "batches.meta").is_file():
            return folder
    raise UserError(f"no CIFAR-10 python batches (batches.meta) in {root} or {root}/cifar-10-batches-py")


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _find(root: Path, stem: str) -> Path:
    for folder in (root, root / "MNIST" / "raw"):
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
    raise UserError(f"no {stem}[.gz] in {root} or {root}/MNIST/raw")


def _read_idx(path: Path) -> np.ndarray:
    """Read an idx file (MNIST's format): magic, dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
        raise UserError(f"{path}: not a uint8 idx file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = [int.from_bytes(raw[4 + 4 * d: 8 + 4 * d], "big") for d in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)
