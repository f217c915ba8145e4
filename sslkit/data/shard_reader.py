"""Reading one shard: by its sample index (any order), or front to back; tolerating a broken tar.

:class:`IndexedShardReader` (shards ``sslkit data shard`` wrote, which carry a sample index) reads
any sample with one ``pread`` per member and checks it against the index's digest; the index itself
must describe this very shard (the manifest's sha256, the file's size).

:class:`ShardReader` (shards without an index, remote shards) never seeks: samples a worker does not
need are read and discarded without decoding, which
is what lets one streaming pass also verify the shard's sha256 (the manifest's) when it reaches the
end of the file. Any failure (the shard cannot be opened, the tar is truncated or garbled, the hash
differs) is kept as :attr:`ShardReader.error`; the reader then returns ``None`` for every later sample.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

from webdataset.gopen import gopen

from sslkit.data.manifest import tar_samples
from sslkit.data.sample_index import SampleIndex, read_index, sample_digest

_CHUNK = 1 << 20


class _HashingStream:
    """A read-only file object that feeds every byte it returns into a sha256."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> None:
        while chunk := self.read(_CHUNK):
            del chunk

    def close(self) -> None:
        self.raw.close()


class ShardReader:
    """Samples of one shard by index, in increasing order (a lower index reopens the shard).

    Args:
        url: path or URL of the shard (anything ``webdataset.gopen`` opens).
        num_samples: samples the manifest promises.
        sha256: expected hex digest, or ``None`` (no manifest digest: not verified).
    """

    def __init__(self, url: str, num_samples: int, sha256: str | None = None) -> None:
        self.url, self.num_samples, self.sha256 = url, num_samples, sha256
        self.error: str | None = None
        self._stream: _HashingStream | None = None
        self._samples: Iterator[dict[str, Any]] | None = None
        self._next = 0

    def get(self, index: int) -> dict[str, Any] | None:
        """The raw sample ``index`` (``__key__``, ``__url__``, bytes per member), or ``None`` after a failure."""
        if self.error is not None:
            return None
        if self._samples is None or index < self._next:
            self._open()
        try:
            assert self._samples is not None
            while self._next < index:
                next(self._samples)  # read, not decoded
                self._next += 1
            sample = next(self._samples)
            self._next += 1
        except StopIteration:
            self._fail(f"ended after {self._next} of {self.num_samples} samples (truncated)")
            return None
        except Exception as exc:  # a garbled or unreadable tar must not end the run
            self._fail(f"{type(exc).__name__}: {exc}")
            return None
        if self._next == self.num_samples:
            self._verify()
        return sample

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:  # closing a pipe whose reader stopped early may complain
                pass
        self._stream = self._samples = None

    def _open(self) -> None:
        self.close()
        try:
            self._stream = _HashingStream(gopen(self.url, "rb"))
        except Exception as exc:
            self._fail(f"cannot open: {type(exc).__name__}: {exc}")
            return
        self._samples = iter(tar_samples(self._stream, self.url))
        self._next = 0

    def _verify(self) -> None:
        """At the last sample: read to the end of the file and compare the digest."""
        if self.sha256 is None or self._stream is None:
            return
        try:
            assert self._samples is not None
            extra = sum(1 for _ in self._samples)
            self._stream.drain()
        except Exception as exc:
            self._fail(f"{type(exc).__name__} after the last sample: {exc}")
            return
        digest = self._stream.digest.hexdigest()
        if extra:
            self._fail(f"holds {self._next + extra} samples, the manifest says {self.num_samples}")
        elif digest != self.sha256:
            self._fail(f"sha256 {digest[:12]}... differs from the manifest's {self.sha256[:12]}...")
        self.close()

    def _fail(self, message: str) -> None:
        self.error = message
        self.close()


class IndexedShardReader:
    """Samples of one local shard by index, in any order, through its sample index.

    Args:
        url: local path of the shard.
        num_samples: samples the manifest promises.
        sha256: the manifest's digest of the shard, or ``None``.
        index_path: the shard's ``.idx.json``.
    """

    def __init__(self, url: str, num_samples: int, sha256: str | None, index_path: str) -> None:
        self.url, self.num_samples, self.sha256, self.index_path = url, num_samples, sha256, index_path
        self.error: str | None = None
        self._index: SampleIndex | None = None
        self._fd: int | None = None

    def get(self, index: int) -> dict[str, Any] | None:
        """The raw sample ``index`` (``__key__``, ``__url__``, bytes per member), or ``None`` after a failure."""
        if self.error is None and (self._index is None or self._fd is None):
            self._open()
        if self.error is not None:
            return None
        assert self._index is not None and self._fd is not None
        key = self._index.key(index)
        try:
            members = {ext: os.pread(self._fd, size, offset) for ext, offset, size in self._index.members(index)}
        except OSError as exc:
            self._fail(f"cannot read sample {key}: {exc}")
            return None
        if sample_digest(members) != self._index.digest(index):
            self._fail(f"sample {key} differs from the shard's index (the shard was changed or replaced)")
            return None
        return {"__key__": key, "__url__": self.url, **members}

    def close(self) -> None:
        """Close the file (the parsed index is kept: reopening is one ``open``)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> None:
        if self._index is None:
            try:
                index = read_index(self.index_path)
            except (OSError, ValueError) as exc:
                self._fail(f"unreadable sample index {self.index_path}: {exc}")
                return
            if len(index) != self.num_samples:
                self._fail(f"its index lists {len(index)} samples, the manifest says {self.num_samples}")
                return
            if self.sha256 is not None and index.sha256 != self.sha256:
                self._fail("its index describes another shard (sha256 differs from the manifest's)")
                return
            self._index = index
        try:
            self._fd = os.open(self.url, os.O_RDONLY)
        except OSError as exc:
            self._fail(f"cannot open: {type(exc).__name__}: {exc}")
            return
        size = os.fstat(self._fd).st_size
        if size != self._index.num_bytes:
            self._fail(f"{size} bytes, its index says {self._index.num_bytes} (truncated or replaced)")

    def _fail(self, message: str) -> None:
        self.error = message
        self.close()
