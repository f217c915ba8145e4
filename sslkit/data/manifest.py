"""The shard manifest (``manifest.json``) and resolving a shard spec to shard URLs with sample counts.

The manifest contract is in ``docs/design.md``: ``shards`` (name, num_samples, sha256, num_bytes),
``num_samples``, ``class_names`` (or null), ``image_size`` ([H, W] or null when sizes vary),
``image_format`` and ``source``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import braceexpand
from webdataset.gopen import gopen
from webdataset.tariterators import group_by_keys, tar_file_iterator

from sslkit.errors import RefusedInput

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_URL_SCHEMES = ("http://", "https://", "s3://", "gs://")
_URL_SAFE = re.compile(r"[A-Za-z0-9._~/%+=@,-]+")  # no quote, space or shell metacharacter


@dataclass(frozen=True)
class ShardInfo:
    """One shard: where to open it (path or URL), how many samples it holds, its manifest sha256 if any."""

    url: str
    num_samples: int
    sha256: str | None = None


@dataclass(frozen=True)
class ShardSet:
    """The shards of one dataset split, in manifest (or pattern) order."""

    shards: tuple[ShardInfo, ...]
    class_names: tuple[str, ...] | None = None

    @property
    def num_samples(self) -> int:
        return sum(s.num_samples for s in self.shards)


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (temp name + rename) into ``out_dir``."""
    path = Path(out_dir) / MANIFEST_NAME
    tmp = path.with_name(f".{MANIFEST_NAME}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(location: str | Path) -> dict[str, Any]:
    """Read a manifest from a local path or any URL that ``webdataset.gopen`` opens."""
    with gopen(str(location), "rb") as stream:
        return json.loads(stream.read().decode("utf-8"))


def resolve_shards(spec: str | Path | list[str] | tuple[str, ...]) -> ShardSet:
    """Resolve a shard spec to shard URLs with their sample counts.

    Args:
        spec: a directory holding ``manifest.json``; a path or URL of a manifest; a shard path, URL or
            brace pattern (``shards/train-{000000..000009}.tar``); or a list of any of these.
            Counts come from the ``manifest.json`` next to the shards; shards it does not list
            are scanned once (slow for large datasets, so ship the manifest).

    Returns:
        The shards in the given order, with class names when a manifest provides them.
    """
    specs = [str(spec)] if isinstance(spec, (str, Path)) else [str(s) for s in spec]
    shards: list[ShardInfo] = []
    class_names: tuple[str, ...] | None = None
    for item in specs:
        found, names = _resolve_one(item)
        shards.extend(found)
        class_names = class_names or names
    if not shards:
        raise ValueError(f"no shards found for {spec!r}")
    return ShardSet(tuple(shards), class_names)


def _resolve_one(item: str) -> tuple[list[ShardInfo], tuple[str, ...] | None]:
    if os.path.isdir(item):
        item = os.path.join(item, MANIFEST_NAME)
    if item.endswith(".json"):
        manifest = read_manifest(item)
        base = _parent(item)
        shards = [ShardInfo(shard_location(base, s.get("name"), item), int(s["num_samples"]), s.get("sha256"))
                  for s in manifest["shards"]]
        return shards, _names(manifest)
    urls = list(braceexpand.braceexpand(item))
    manifest = _sibling_manifest(urls[0])
    counts = {s["name"]: int(s["num_samples"]) for s in manifest["shards"]} if manifest else {}
    digests = {s["name"]: s.get("sha256") for s in manifest["shards"]} if manifest else {}
    shards = []
    for url in urls:
        name = url.rsplit("/", 1)[-1]
        if name not in counts:
            logger.warning("shard %s is not in a manifest.json next to it; counting its samples", url)
            counts[name] = count_samples(url)
        shards.append(ShardInfo(url, counts[name], digests.get(name)))
    return shards, _names(manifest) if manifest else None


def shard_location(base: str, name: Any, manifest: str) -> str:
    """Where to open the shard a manifest names: inside the manifest's folder, nowhere else.

    A name is a relative path below ``base`` (no absolute path, ``..``, ``:`` as in ``pipe:``, nor a
    symlink leading out of the folder). A manifest read from a URL may also name explicit
    ``http(s)://``, ``s3://`` or ``gs://`` URLs; remote names are limited to URL-safe characters, as
    webdataset opens them through a shell pipe (``curl``, ``gsutil``).

    Raises:
        RefusedInput: naming the manifest and the shard name.
    """
    remote = "://" in base
    location = _remote_location(base, name) if remote else _local_location(base, name)
    if location is None:
        kinds = "a relative name inside its folder" + (f" or an explicit {', '.join(_URL_SCHEMES)} URL" if remote else "")
        raise RefusedInput(f"{manifest}: shard name {name!r} is refused; a manifest may only name {kinds}")
    return location


def _is_relative_name(name: Any) -> bool:
    return (isinstance(name, str) and bool(name) and not name.startswith(("/", "~"))
            and not any(c in name for c in ":\\\0") and ".." not in name.split("/"))


def _local_location(base: str, name: Any) -> str | None:
    if not _is_relative_name(name):
        return None
    location = os.path.join(base, name)
    root = os.path.realpath(base).rstrip(os.sep) + os.sep
    return location if os.path.realpath(location).startswith(root) else None  # symlinks resolved


def _remote_location(base: str, name: Any) -> str | None:
    if isinstance(name, str) and name.startswith(_URL_SCHEMES):
        return name if _URL_SAFE.fullmatch(name.split("://", 1)[1]) else None
    return f"{base}/{name}" if _is_relative_name(name) and _URL_SAFE.fullmatch(name) else None


def count_samples(url: str) -> int:
    """Count the samples in one shard by reading its tar headers (no image decoding).

    A shard that cannot be opened or read to its end counts the samples before the failure (0 when
    it cannot be opened), named once in the log: corrupt data never ends a run.
    """
    count = 0
    try:
        with gopen(url, "rb") as stream:
            for _ in tar_samples(stream, url):
                count += 1
    except Exception as exc:  # a truncated or unreadable tar without a manifest
        logger.warning("shard %s is unreadable after %d samples (%s: %s); using those", url, count,
                       type(exc).__name__, exc)
    return count


def tar_samples(stream: Any, url: str) -> Iterator[dict[str, Any]]:
    """Raw samples (``__key__``, ``__url__`` and one bytes value per member suffix) of an open tar stream."""
    files = ({**member, "__url__": url} for member in tar_file_iterator(stream))
    return group_by_keys(files)


def _sibling_manifest(url: str) -> dict[str, Any] | None:
    location = _join(_parent(url), MANIFEST_NAME)
    if "://" not in location and not os.path.exists(location):
        return None
    try:
        return read_manifest(location)
    except Exception:  # a remote manifest that is absent: fall back to counting
        return None


def _names(manifest: dict[str, Any]) -> tuple[str, ...] | None:
    names = manifest.get("class_names")
    return tuple(names) if names else None


def _parent(url: str) -> str:
    return url.rsplit("/", 1)[0] if "/" in url else "."


def _join(base: str, name: str) -> str:
    return f"{base}/{name}" if "://" in base else os.path.join(base, name)
