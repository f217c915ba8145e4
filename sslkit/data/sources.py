"""Image sources for the shard writer: iterables of ``(key, image, label)``.

Keys are unique within a dataset and stable across runs (``cifar10-train-000123``). Grayscale images
stay mode ``"L"``; the reader converts to RGB. Labels are ``None`` when unknown.
"""

from __future__ import annotations

import gzip
import pickle
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

Sample = tuple[str, Image.Image, "int | None"]

SOURCES = ("folder", "cifar10", "mnist", "digits")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageSource:
    """A finite, re-iterable sequence of samples with its metadata."""

    name: str  # "cifar10:train"; written to the manifest's ``source``
    class_names: tuple[str, ...] | None
    num_samples: int
    _samples: Callable[[], Iterator[Sample]]

    def __iter__(self) -> Iterator[Sample]:
        return self._samples()

    def __len__(self) -> int:
        return self.num_samples


def open_source(source: str, *, root: str | Path | None = None, split: str = "train", size: int = 32) -> ImageSource:
    """Build a source by name (``folder``, ``cifar10``, ``mnist``, ``digits``); see each function."""
    if source == "digits":
        return digits_source(split, size=size)
    if root is None:
        raise ValueError(f"--root is required for source {source!r}")
    if source == "folder":
        return folder_source(root, split=split)
    if source == "cifar10":
        return cifar10_source(root, split)
    if source == "mnist":
        return mnist_source(root, split)
    raise ValueError(f"unknown source {source!r}; choose from {SOURCES}")


def folder_source(root: str | Path, *, split: str | None = None) -> ImageSource:
    """Images under ``root`` (or ``root/split`` when that folder exists).

    Class sub-folders give labels (sorted folder names are the class names); images directly under
    the root, with no sub-folders, are unlabeled. Keys are the relative paths without suffix, with
    every character other than ``[A-Za-z0-9_-]`` replaced by ``_`` (WebDataset splits keys at dots).
    """
    root = Path(root)
    if split and (root / split).is_dir():
        root = root / split
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if class_dirs:
        files = [(f, label) for label, d in enumerate(class_dirs) for f in _images_under(d)]
        class_names: tuple[str, ...] | None = tuple(d.name for d in class_dirs)
    else:
        files = [(f, None) for f in _images_under(root)]
        class_names = None
    if not files:
        raise ValueError(f"no images under {root}")
    keys = _unique_keys([f.relative_to(root).with_suffix("").as_posix() for f, _ in files])

    def samples() -> Iterator[Sample]:
        for key, (path, label) in zip(keys, files):
            with Image.open(path) as encoded:
                image = encoded.copy() if encoded.mode in ("RGB", "L") else encoded.convert("RGB")
            yield key, image, label

    return ImageSource(f"folder:{root.name}", class_names, len(files), samples)


def cifar10_source(root: str | Path, split: str) -> ImageSource:
    """CIFAR-10 python batches under ``root`` (or ``root/cifar-10-batches-py``); split train/test."""
    folder = _cifar_folder(Path(root))
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10 split must be train or test, got {split!r}")
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
        raise ValueError(f"MNIST split must be train or test, got {split!r}")
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_find(Path(root), f"{prefix}-images-idx3-ubyte"))
    labels = _read_idx(_find(Path(root), f"{prefix}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise ValueError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")

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
        raise ValueError(f"digits split must be train or test, got {split!r}")
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


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _unique_keys(paths: list[str]) -> list[str]:
    keys, seen = [], set()
    for path in paths:
        key = re.sub(r"[^A-Za-z0-9_-]", "_", path)
        while key in seen:
            key += "_"
        seen.add(key)
        keys.append(key)
    return keys


def _cifar_folder(root: Path) -> Path:
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / "batches.meta").is_file():
            return folder
    raise FileNotFoundError(f"no CIFAR-10 python batches (batches.meta) in {root} or {root}/cifar-10-batches-py")


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _find(root: Path, stem: str) -> Path:
    for folder in (root, root / "MNIST" / "raw"):
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(f"no {stem}[.gz] in {root} or {root}/MNIST/raw")


def _read_idx(path: Path) -> np.ndarray:
    """Read an idx file (MNIST's format): magic, dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
        raise ValueError(f"{path}: not a uint8 idx file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = [int.from_bytes(raw[4 + 4 * d: 8 + 4 * d], "big") for d in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)
