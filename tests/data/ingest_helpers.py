"""Helpers for the ingest tests: small image files of each kind, written where a test asks."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def image_bytes(i: int, fmt: str = "JPEG", size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    """Encoded bytes of a small noisy image (``size`` is W x H) whose pixels depend on ``i``."""
    rng = np.random.default_rng(i)
    channels = {"RGB": 3, "L": 1, "CMYK": 4, "RGBA": 4}.get(mode, 3)
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, "RGBA" if channels == 4 else None)
    image = image.convert(mode) if image.mode != mode else image
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def class_folder(root: Path, num_classes: int, per_class: int, suffix: str = ".JPEG") -> dict[str, bytes]:
    """``root/c{k}/img{i}{suffix}`` JPEGs; returns relative path -> bytes."""
    files = {}
    for c in range(num_classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            data = image_bytes(c * per_class + i)
            (root / f"c{c}" / f"img{c * per_class + i}{suffix}").write_bytes(data)
            files[f"c{c}/img{c * per_class + i}{suffix}"] = data
    return files


def read_samples(folder: Path) -> dict[str, dict[str, bytes]]:
    """Every sample of the shards listed in ``folder/manifest.json``: key -> {ext: bytes}."""
    manifest = json.loads((folder / "manifest.json").read_text())
    samples: dict[str, dict[str, bytes]] = {}
    for shard in manifest["shards"]:
        with tarfile.open(folder / shard["name"]) as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def shard_keys(folder: Path) -> list[list[str]]:
    """Sample keys per shard, in shard and member order."""
    manifest = json.loads((folder / "manifest.json").read_text())
    keys = []
    for shard in manifest["shards"]:
        with tarfile.open(folder / shard["name"]) as tar:
            names = [m.name.partition(".")[0] for m in tar]
        keys.append(list(dict.fromkeys(names)))
    return keys
