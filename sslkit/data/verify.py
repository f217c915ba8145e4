"""``sslkit data verify DIR``: check every shard of a set against its manifest before training.

Each shard is read once, start to end: its sha256, byte size and sample count must match the
manifest, and its sample index (if it has one) must describe it. A shard that is missing, truncated, unreadable or replaced (say, by a copy of another
shard, which the check names) is reported on one line; any problem makes the command exit 1.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from sslkit.data.manifest import MANIFEST_NAME, read_manifest, tar_samples
from sslkit.data.sample_index import INDEX_SUFFIX, read_index
from sslkit.errors import UserError


@dataclass(frozen=True)
class ShardCheck:
    """What reading one shard found."""

    name: str
    sha256: str | None  # None when the file could not be read at all
    num_bytes: int
    num_samples: int
    error: str | None  # a tar read error, if any


def load_manifest(directory: str | Path) -> tuple[Path, dict[str, Any]]:
    """The folder and its ``manifest.json``; a missing one is a user error."""
    folder = Path(directory)
    if not (folder / MANIFEST_NAME).is_file():
        raise UserError(f"{folder}: no {MANIFEST_NAME}; pass a folder written by `sslkit data shard`")
    return folder, read_manifest(folder / MANIFEST_NAME)


def verify_shards(directory: str | Path, *, workers: int = 2, progress: bool = True) -> list[str]:
    """Check every shard listed in ``directory/manifest.json``; returns one line per problem.

    Args:
        directory: a folder written by ``sslkit data shard``.
        workers: shards read at once (threads: hashing and reading release the GIL).
        progress: show a tqdm bar (shards, MB/s).
    """
    folder, manifest = load_manifest(directory)
    expected = {s["name"]: s for s in manifest["shards"]}
    by_digest = {s["sha256"]: s["name"] for s in manifest["shards"]}
    problems = []
    total = sum(s["num_bytes"] for s in manifest["shards"])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, tqdm(
        total=total, unit="B", unit_scale=True, desc="verify", disable=not progress
    ) as bar:
        for check in pool.map(check_shard, (folder / name for name in expected)):
            bar.update(expected[check.name]["num_bytes"])
            problem = _compare(check, expected[check.name], by_digest) or _check_index(folder / check.name,
                                                                                       expected[check.name])
            if problem:
                problems.append(f"{check.name}: {problem}")
    if sum(s["num_samples"] for s in manifest["shards"]) != manifest["num_samples"]:
        problems.append(f"{MANIFEST_NAME}: num_samples does not equal the sum over its shards")
    return problems


def check_shard(path: Path) -> ShardCheck:
    """Read one shard once: sha256, size and number of samples (tar headers; images not decoded)."""
    try:
        with open(path, "rb") as raw:
            stream = HashingReader(raw)
            count, error = 0, None
            try:
                for _ in tar_samples(stream, str(path)):
                    count += 1
            except Exception as exc:  # a truncated or garbled tar: still hash every byte
                error = f"{type(exc).__name__}: {exc}"
            stream.drain()
            return ShardCheck(path.name, stream.digest.hexdigest(), stream.num_bytes, count, error)
    except OSError as exc:
        return ShardCheck(path.name, None, 0, 0, exc.strerror or str(exc))


def extra_tars(directory: str | Path) -> list[str]:
    """Tar files in the folder that its manifest does not list (left by an older run, or stray)."""
    folder, manifest = load_manifest(directory)
    listed = {s["name"] for s in manifest["shards"]}
    return sorted(n for n in os.listdir(folder) if n.endswith(".tar") and n not in listed)


def _compare(check: ShardCheck, want: dict[str, Any], by_digest: dict[str, str]) -> str | None:
    if check.sha256 is None:
        return f"cannot be read ({check.error})"
    if check.sha256 != want["sha256"]:
        other = by_digest.get(check.sha256)
        what = f"is a copy of {other}" if other else "content changed"
        return (
            f"sha256 mismatch ({what}; {check.num_samples} samples, {check.num_bytes} bytes, manifest"
            f" {want['num_samples']} samples, {want['num_bytes']} bytes{'; ' + check.error if check.error else ''})"
        )
    if check.error:
        return f"unreadable tar ({check.error})"
    if check.num_samples != want["num_samples"]:
        return f"{check.num_samples} samples, manifest says {want['num_samples']}"
    return None


def _check_index(shard: Path, want: dict[str, Any]) -> str | None:
    """A shard's sample index, if it has one, must describe that shard (a missing one: it is streamed)."""
    path = Path(f"{shard}{INDEX_SUFFIX}")
    if not path.exists():
        return None
    try:
        index = read_index(path)
    except (OSError, ValueError) as exc:
        return f"unreadable sample index {path.name} ({exc})"
    if index.sha256 != want["sha256"] or index.num_bytes != want["num_bytes"] or len(index) != want["num_samples"]:
        return f"its sample index {path.name} describes another shard (sha256, size or count differ)"
    return None


class HashingReader:
    """A read-only stream that hashes (sha256) and counts what is read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.num_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        self.num_bytes += len(data)
        return data

    def drain(self) -> None:
        for _ in iter(lambda: self.read(1 << 20), b""):
            pass

