"""The sample index of a shard: where each sample's members lie in the tar, and a digest of their bytes.

The shard writer puts ``<shard>.idx.json`` beside every shard it writes. With it a reader fetches any
sample with one ``pread`` per member (no tar parsing, no reading of the samples in between), which is
what lets the epoch plan permute the samples of many shards together (``sslkit.data.plan``): even
shards written class after class then give i.i.d.-like batches. Integrity holds sample by sample: the
index names the sha256 of the shard it describes (checked against the manifest's) and carries a
digest of each sample's bytes (checked on every read), so a shard swapped for another, a truncated
file or flipped bytes are caught at the first sample read from them.

The index is data: JSON with keys, integers and hex strings, validated before use (bounds checked
against the shard's size); nothing in it is imported or called.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

INDEX_SUFFIX = ".idx.json"
INDEX_FORMAT = "sslkit-sample-index/1"
_DIGEST_CHARS = 32  # 128 bits of sha256
_HEX = re.compile(r"[0-9a-f]+")


def index_location(shard_url: str) -> str | None:
    """The index beside a local shard, if there is one (remote shards are streamed, not indexed)."""
    if "://" in shard_url or shard_url.startswith("pipe:"):
        return None
    path = shard_url + INDEX_SUFFIX
    return path if os.path.isfile(path) else None


def sample_digest(members: Mapping[str, bytes]) -> str:
    """Digest of one sample's members (suffix, length and bytes of each, in suffix order)."""
    digest = hashlib.sha256()
    for ext in sorted(members):
        data = members[ext]
        digest.update(f"{ext}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:_DIGEST_CHARS]


class SampleIndex:
    """Per sample of one shard: key, members ``(suffix, data offset, size)`` and digest.

    Held compactly (about 80 bytes a sample: a worker reading a whole ImageNet-size set by offset
    keeps every shard's index): keys and digests in one bytes blob each, offsets and sizes in arrays,
    the member suffixes as a few distinct layouts.
    """

    def __init__(self, sha256: str | None, num_bytes: int, keys: list[str],
                 members: list[tuple[tuple[str, int, int], ...]], digests: list[str]) -> None:
        self.sha256, self.num_bytes = sha256, num_bytes
        encoded = [k.encode("utf-8") for k in keys]
        self._keys = b"".join(encoded)
        self._key_ends = np.cumsum([len(k) for k in encoded], dtype=np.int64)
        self._digests = bytes.fromhex("".join(digests)) if digests else b""
        self._digest_bytes = len(digests[0]) // 2 if digests else 0
        layouts = sorted({tuple(m[0] for m in row) for row in members})
        self._layouts = tuple(layouts)
        lookup = {layout: i for i, layout in enumerate(layouts)}
        self._layout = np.array([lookup[tuple(m[0] for m in row)] for row in members], dtype=np.int32)
        width = max((len(row) for row in members), default=0)
        self._where = np.zeros((len(members), width, 2), dtype=np.int64)
        for i, row in enumerate(members):
            self._where[i, : len(row)] = [m[1:] for m in row]

    def __len__(self) -> int:
        return len(self._key_ends)

    def key(self, i: int) -> str:
        start = int(self._key_ends[i - 1]) if i else 0
        return self._keys[start: int(self._key_ends[i])].decode("utf-8")

    def members(self, i: int) -> list[tuple[str, int, int]]:
        layout = self._layouts[int(self._layout[i])]
        return [(ext, int(self._where[i, j, 0]), int(self._where[i, j, 1])) for j, ext in enumerate(layout)]

    def digest(self, i: int) -> str:
        return self._digests[i * self._digest_bytes: (i + 1) * self._digest_bytes].hex()

    @property
    def keys(self) -> list[str]:
        return [self.key(i) for i in range(len(self))]

    def to_json(self) -> dict[str, Any]:
        return {"format": INDEX_FORMAT, "sha256": self.sha256, "num_bytes": self.num_bytes, "keys": self.keys,
                "members": [[list(m) for m in self.members(i)] for i in range(len(self))],
                "digests": [self.digest(i) for i in range(len(self))]}

    @classmethod
    def from_json(cls, record: Any) -> SampleIndex:
        """Validate a parsed index; raises ``ValueError`` naming what is wrong."""
        if not isinstance(record, dict) or record.get("format") != INDEX_FORMAT:
            raise ValueError(f"not an {INDEX_FORMAT} index")
        num_bytes, keys, members, digests = (record.get(k) for k in ("num_bytes", "keys", "members", "digests"))
        if not isinstance(num_bytes, int) or not all(isinstance(v, list) for v in (keys, members, digests)):
            raise ValueError("index fields have the wrong types")
        if not len(keys) == len(members) == len(digests):
            raise ValueError("index columns differ in length")
        parsed = []
        for sample in members:
            row = []
            for member in sample if isinstance(sample, list) else [None]:
                if not (isinstance(member, list) and len(member) == 3 and isinstance(member[0], str)
                        and all(isinstance(v, int) and v >= 0 for v in member[1:])
                        and member[1] + member[2] <= num_bytes):
                    raise ValueError(f"index member {member!r} is malformed or outside the shard")
                row.append((member[0], member[1], member[2]))
            parsed.append(tuple(row))
        if not all(isinstance(k, str) for k in keys):
            raise ValueError("index keys must be strings")
        if not all(isinstance(d, str) and len(d) == _DIGEST_CHARS and _HEX.fullmatch(d) for d in digests):
            raise ValueError(f"index digests must be {_DIGEST_CHARS} hex characters")
        sha256 = record.get("sha256")
        return cls(sha256 if isinstance(sha256, str) else None, num_bytes, keys, parsed, digests)


def read_index(path: str | Path) -> SampleIndex:
    with open(path, "rb") as f:
        return SampleIndex.from_json(json.loads(f.read().decode("utf-8")))


class IndexBuilder:
    """Collects a shard's index while the writer appends samples (offsets are the writer's)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.members: list[tuple[tuple[str, int, int], ...]] = []
        self.digests: list[str] = []

    def add(self, key: str, members: Mapping[str, bytes], offsets: Mapping[str, int]) -> None:
        self.keys.append(key)
        self.members.append(tuple((ext, offsets[ext], len(members[ext])) for ext in sorted(members)))
        self.digests.append(sample_digest(members))

    def write(self, path: Path, *, sha256: str, num_bytes: int) -> None:
        """Write the index atomically (temp name + rename)."""
        index = SampleIndex(sha256, num_bytes, self.keys, self.members, self.digests)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(index.to_json(), separators=(",", ":")))
        os.replace(tmp, path)
