"""Shard writer: encoded samples -> size-limited WebDataset tar shards plus ``manifest.json``.

Each shard is written under a temporary name and renamed when complete, so a reader never sees a
half-written shard and a killed run leaves only temp files behind. Tar members carry mtime 0, so the
same input gives byte-identical shards (and the same sha256, computed while the shard is written).
Beside each shard goes its sample index (``<shard>.idx.json``, :mod:`sslkit.data.sample_index`),
renamed into place before the shard, so a complete shard always has one.
The parallel, resumable pipeline around it is :func:`sslkit.data.ingest.write_shards`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from PIL import Image

from sslkit.data.encoding import EncodeOptions, encode_sample
from sslkit.data.manifest import write_manifest
from sslkit.data.sample_index import INDEX_SUFFIX, IndexBuilder
from sslkit.data.tarstream import TarStream, closed_size, member_header, member_size

logger = logging.getLogger(__name__)


class ShardWriter:
    """Write samples into ``{prefix}-{i:06d}.tar`` shards under ``out_dir``.

    Args:
        out_dir: folder for the shards and ``manifest.json`` (created if missing).
        prefix: shard name prefix, usually the split (``train``).
        image_format: ``"png"`` (lossless) or ``"jpg"``, for the PIL images given to :meth:`write`.
        quality: JPEG quality.
        max_samples_per_shard: start a new shard after this many samples.
        max_shard_bytes: start a new shard before a file would exceed this size (``None``: no limit).
        names: name of the ``i``-th shard (default ``{prefix}-{i:06d}.tar``).
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
        names: Callable[[int], str] | None = None,
    ) -> None:
        if max_samples_per_shard < 1:
            raise ValueError("max_samples_per_shard must be >= 1")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.options = EncodeOptions(image_format=image_format, quality=quality)
        self.max_samples = max_samples_per_shard
        self.max_bytes = max_shard_bytes
        self.names = names or (lambda i: f"{prefix}-{i:06d}.tar")
        self.shards: list[dict[str, Any]] = []
        self.image_sizes: set[tuple[int, int]] = set()
        self.formats: Counter[str] = Counter()
        self._tar: TarStream | None = None
        self._file: _HashingFile | None = None
        self._index = IndexBuilder()
        self._tmp: Path | None = None
        self._count = 0
        self._bytes = 0

    @property
    def image_format(self) -> str:
        return self.options.image_format

    @property
    def num_samples(self) -> int:
        return sum(s["num_samples"] for s in self.shards) + self._count

    def write(self, key: str, image: Image.Image, label: int | None) -> None:
        """Encode one image and append it (with its label, if known) to the current shard."""
        encoded = encode_sample(image, self.options)
        self.write_encoded(key, encoded.ext, encoded.data, label, encoded.size)

    def write_encoded(self, key: str, ext: str, data: bytes, label: int | None, size: tuple[int, int]) -> None:
        """Append encoded image bytes (member ``key.ext``) and the label, if known; ``size`` is (H, W)."""
        if "." in key or not key:
            raise ValueError(f"sample key {key!r} must be non-empty and contain no '.'")
        members = {ext: data}
        if label is not None:
            members["cls"] = str(int(label)).encode("ascii")
        headers = {e: member_header(f"{key}.{e}", len(members[e])) for e in sorted(members)}  # TarWriter's order
        nbytes = sum(member_size(h, len(members[e])) for e, h in headers.items())
        if self._tar is not None and (
            self._count >= self.max_samples
            or (self.max_bytes is not None and closed_size(self._bytes + nbytes) > self.max_bytes)
        ):
            self._finish_shard()
        if self._tar is None:
            self._start_shard()
        if self.max_bytes is not None and self._count == 0 and closed_size(nbytes) > self.max_bytes:
            logger.warning("sample %s alone exceeds the shard size limit; writing it anyway", key)
        offsets = {e: self._tar.add(f"{key}.{e}", members[e], h) for e, h in headers.items()}
        self._index.add(key, members, offsets)
        if len(self.image_sizes) < 2:
            self.image_sizes.add(size)
        self.formats[ext] += 1
        self._count += 1
        self._bytes += nbytes

    def finish(self) -> list[dict[str, Any]]:
        """Finish the last shard; returns the shard records (name, num_samples, sha256, num_bytes)."""
        if self._tar is not None:
            self._finish_shard()
        return self.shards

    def close(self, *, class_names: Iterable[str] | None = None, source: str = "", **extra: Any) -> dict[str, Any]:
        """Finish the last shard and write ``manifest.json`` (with ``extra`` keys); returns the manifest."""
        self.finish()
        manifest = {
            "shards": self.shards,
            "num_samples": self.num_samples,
            "class_names": list(class_names) if class_names is not None else None,
            "image_size": list(next(iter(self.image_sizes))) if len(self.image_sizes) == 1 else None,
            "image_format": manifest_format(self.formats) or self.image_format,
            "source": source,
            **extra,
        }
        write_manifest(self.out_dir, manifest)
        return manifest

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None and self._tar is not None:  # leave no partial shard behind
            self._tar.close()
            assert self._file is not None and self._tmp is not None
            self._file.close()
            self._tmp.unlink(missing_ok=True)
            self._tar = None

    def _start_shard(self) -> None:
        name = self.names(len(self.shards))
        self._tmp = self.out_dir / f".{name}.tmp-{os.getpid()}"
        self._file = _HashingFile(self._tmp)
        self._tar = TarStream(self._file)
        self._index = IndexBuilder()
        self._count = 0
        self._bytes = 0

    def _finish_shard(self) -> None:
        assert self._tar is not None and self._tmp is not None and self._file is not None
        self._tar.close()
        self._file.close()
        name = self.names(len(self.shards))
        self._index.write(self.out_dir / f"{name}{INDEX_SUFFIX}", sha256=self._file.digest.hexdigest(),
                          num_bytes=self._file.num_bytes)
        os.replace(self._tmp, self.out_dir / name)
        self.shards.append({
            "name": name, "num_samples": self._count, "sha256": self._file.digest.hexdigest(),
            "num_bytes": self._file.num_bytes,
        })
        self._tar, self._file, self._tmp, self._count, self._bytes = None, None, None, 0, 0


def manifest_format(formats: Counter[str]) -> str | None:
    """The manifest's ``image_format``: the one member extension used, ``"mixed"``, or None if empty."""
    used = [ext for ext, n in formats.items() if n]
    return None if not used else used[0] if len(used) == 1 else "mixed"


class _HashingFile:
    """A write-only file that hashes (sha256) and counts what passes through it."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "wb")
        self.digest = hashlib.sha256()
        self.num_bytes = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.num_bytes += len(data)
        return self._f.write(data)

    def close(self) -> None:
        self._f.close()
