"""Shard writer: samples -> size-limited WebDataset tar shards plus ``manifest.json``.

Each shard is written under a temporary name and renamed when complete, so a reader never sees a
half-written shard and a killed run leaves only temp files behind. Tar members carry mtime 0, so the
same input gives byte-identical shards (and the same sha256).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from PIL import Image
from tqdm import tqdm
from webdataset import TarWriter

from sslkit.data.manifest import write_manifest
from sslkit.data.sources import ImageSource

logger = logging.getLogger(__name__)

IMAGE_FORMATS = ("png", "jpg")
_BLOCK = 512
_RECORD = 20 * _BLOCK  # tarfile pads a closed stream to a multiple of this


class ShardWriter:
    """Write samples into ``{prefix}-{i:06d}.tar`` shards under ``out_dir``.

    Args:
        out_dir: folder for the shards and ``manifest.json`` (created if missing).
        prefix: shard name prefix, usually the split (``train``).
        image_format: ``"png"`` (lossless) or ``"jpg"``.
        quality: JPEG quality.
        max_samples_per_shard: start a new shard after this many samples.
        max_shard_bytes: start a new shard before a file would exceed this size (``None``: no limit).
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        prefix: str = "shard",
        image_format: str = "png",
        quality: int = 95,
        max_samples_per_shard: int = 1000,
        max_shard_bytes: int | None = None,
    ) -> None:
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
        if max_samples_per_shard < 1:
            raise ValueError("max_samples_per_shard must be >= 1")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.image_format = image_format
        self.quality = quality
        self.max_samples = max_samples_per_shard
        self.max_bytes = max_shard_bytes
        self.shards: list[dict[str, Any]] = []
        self.image_sizes: set[tuple[int, int]] = set()
        self._tar: TarWriter | None = None
        self._tmp: Path | None = None
        self._count = 0
        self._bytes = 0

    @property
    def num_samples(self) -> int:
        return sum(s["num_samples"] for s in self.shards) + self._count

    def write(self, key: str, image: Image.Image, label: int | None) -> None:
        """Encode one image and append it (with its label, if known) to the current shard."""
        if "." in key or not key:
            raise ValueError(f"sample key {key!r} must be non-empty and contain no '.'")
        members = {self.image_format: self._encode(image)}
        if label is not None:
            members["cls"] = str(int(label)).encode("ascii")
        size = sum(_member_bytes(f"{key}.{ext}", len(v)) for ext, v in members.items())
        if self._tar is not None and (
            self._count >= self.max_samples
            or (self.max_bytes is not None and _closed_size(self._bytes + size) > self.max_bytes)
        ):
            self._finish_shard()
        if self._tar is None:
            self._start_shard()
        if self.max_bytes is not None and self._count == 0 and _closed_size(size) > self.max_bytes:
            logger.warning("sample %s alone exceeds the shard size limit; writing it anyway", key)
        self._tar.write({"__key__": key, **members})
        self.image_sizes.add((image.height, image.width))
        self._count += 1
        self._bytes += size

    def close(self, *, class_names: Iterable[str] | None = None, source: str = "") -> dict[str, Any]:
        """Finish the last shard and write ``manifest.json``; returns the manifest."""
        if self._tar is not None:
            self._finish_shard()
        manifest = {
            "shards": self.shards,
            "num_samples": self.num_samples,
            "class_names": list(class_names) if class_names is not None else None,
            "image_size": list(next(iter(self.image_sizes))) if len(self.image_sizes) == 1 else None,
            "image_format": self.image_format,
            "source": source,
        }
        write_manifest(self.out_dir, manifest)
        return manifest

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None and self._tar is not None:  # leave no partial shard behind
            self._tar.close()
            assert self._tmp is not None
            self._tmp.unlink(missing_ok=True)
            self._tar = None

    def _encode(self, image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        if self.image_format == "png":
            image.save(buffer, format="PNG")
        else:
            image.save(buffer, format="JPEG", quality=self.quality)
        return buffer.getvalue()

    def _start_shard(self) -> None:
        name = f"{self.prefix}-{len(self.shards):06d}.tar"
        self._tmp = self.out_dir / f".{name}.tmp-{os.getpid()}"
        self._tar = TarWriter(str(self._tmp), encoder=False, mtime=0)
        self._count = 0
        self._bytes = 0

    def _finish_shard(self) -> None:
        assert self._tar is not None and self._tmp is not None
        self._tar.close()
        name = f"{self.prefix}-{len(self.shards):06d}.tar"
        digest = hashlib.sha256()
        with open(self._tmp, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        num_bytes = self._tmp.stat().st_size
        os.replace(self._tmp, self.out_dir / name)
        self.shards.append(
            {"name": name, "num_samples": self._count, "sha256": digest.hexdigest(), "num_bytes": num_bytes}
        )
        self._tar, self._tmp, self._count, self._bytes = None, None, 0, 0


def write_shards(
    source: ImageSource,
    out_dir: str | Path,
    *,
    prefix: str | None = None,
    image_format: str = "png",
    quality: int = 95,
    max_samples_per_shard: int = 1000,
    max_shard_bytes: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write every sample of ``source`` to shards in ``out_dir``; returns the manifest.

    ``prefix`` defaults to the split in the source name (``cifar10:train`` -> ``train``).
    """
    prefix = prefix or source.name.rsplit(":", 1)[-1]
    with ShardWriter(
        out_dir, prefix=prefix, image_format=image_format, quality=quality,
        max_samples_per_shard=max_samples_per_shard, max_shard_bytes=max_shard_bytes,
    ) as writer:
        for key, image, label in tqdm(source, total=len(source), desc=source.name, disable=not progress):
            writer.write(key, image, label)
        return writer.close(class_names=source.class_names, source=source.name)


def _member_bytes(name: str, size: int) -> int:
    """Bytes a tar member takes: header (+ PAX long-name header) and data padded to blocks."""
    header = _BLOCK if len(name) < 100 else 3 * _BLOCK + -(-len(name) // _BLOCK) * _BLOCK
    return header + -(-size // _BLOCK) * _BLOCK


def _closed_size(content: int) -> int:
    """File size once closed: two zero end blocks, padded to a whole record."""
    return -(-(content + 2 * _BLOCK) // _RECORD) * _RECORD

