"""``sslkit data index DIR``: give an existing shard set the sample indexes ``sslkit data shard`` writes.

A set written by another tool (webdataset's ``TarWriter``, an older sslkit) has a manifest but no
``<shard>.idx.json``: it is streamed in tar order, one shard after another, so shards written class
after class give batches of few classes, and resuming reads forward to the saved position. Indexing
reads each shard once, start to end (tar headers and bytes, images not decoded), and writes the index
the writer would have written: the samples as webdataset groups them (:func:`webdataset.tariterators.
group_by_keys`, the very function that streams the shard), each member's data offset and size, each
sample's digest, and the shard's sha256. A shard whose sha256, size or sample count differs from the
manifest gets no index and is reported (the manifest is what readers trust; re-shard or fix it).
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm
from webdataset.tariterators import group_by_keys, meta_prefix, meta_suffix

from sslkit.data.sample_index import INDEX_SUFFIX, IndexBuilder
from sslkit.data.verify import HashingReader, load_manifest

_SKIP_META = re.compile(r"__[^/]*__($|/)")  # webdataset's tar_file_iterator default: members never read


@dataclass(frozen=True)
class IndexReport:
    """What ``index_shards`` did: shards indexed, shards that already had an index, one line per problem."""

    written: list[str]
    kept: list[str]
    problems: list[str]


def index_shards(directory: str | Path, *, force: bool = False, workers: int = 2, progress: bool = True) -> IndexReport:
    """Write ``<shard>.idx.json`` beside every shard of ``directory/manifest.json`` that has none.

    Args:
        directory: a folder with ``manifest.json`` and its shards.
        force: rewrite indexes that exist too.
        workers: shards read at once (threads: hashing and reading release the GIL).
        progress: show a tqdm bar (bytes, MB/s).
    """
    folder, manifest = load_manifest(directory)
    shards = manifest["shards"]
    todo = [s for s in shards if force or not (folder / f"{s['name']}{INDEX_SUFFIX}").exists()]
    kept = [s["name"] for s in shards if s not in todo]
    written, problems = [], []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, tqdm(
        total=sum(s["num_bytes"] for s in todo), unit="B", unit_scale=True, desc="index", disable=not progress
    ) as bar:
        for want, problem in zip(todo, pool.map(lambda s: index_shard(folder / s["name"], s), todo)):
            bar.update(want["num_bytes"])
            if problem:
                problems.append(f"{want['name']}: {problem}")
            else:
                written.append(want["name"])
    return IndexReport(written, kept, problems)


def index_shard(path: Path, want: dict[str, Any]) -> str | None:
    """Index one shard if it is the one the manifest describes; returns the problem, or None once written."""
    builder = IndexBuilder()
    count = 0
    try:
        with open(path, "rb") as raw:
            stream = HashingReader(raw)
            try:
                for sample in group_by_keys(_members(stream, str(path))):
                    members = {k: v for k, v in sample.items() if not k.startswith("__")}
                    builder.add(sample["__key__"], {k: data for k, (_, data) in members.items()},
                                {k: offset for k, (offset, _) in members.items()})
                    count += 1
            except Exception as exc:  # a truncated or garbled tar (webdataset raises what tarfile raises)
                return (f"unreadable tar after {count} samples ({type(exc).__name__}: {exc}); not indexed (an index "
                        "needs a plain, uncompressed tar)")
            stream.drain()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}); not indexed"
    sha256 = stream.digest.hexdigest()
    found = (sha256, stream.num_bytes, count)
    if found != (want["sha256"], want["num_bytes"], want["num_samples"]):
        return (f"does not match the manifest ({count} samples, {stream.num_bytes} bytes, sha256 {sha256[:12]}; manifest "
                f"{want['num_samples']}, {want['num_bytes']}, {want['sha256'][:12]}); not indexed: check it with "
                "`sslkit data verify`")
    builder.write(Path(f"{path}{INDEX_SUFFIX}"), sha256=sha256, num_bytes=stream.num_bytes)
    return None


def _members(stream: HashingReader, url: str) -> Iterator[dict[str, Any]]:
    """webdataset's ``tar_file_iterator`` (same members skipped), each value ``(data offset, bytes)``."""
    tar = tarfile.open(fileobj=stream, mode="r|")  # plain tar only: offsets into a compressed one mean nothing
    for info in tar:
        name = info.name
        if not info.isreg() or name is None or _SKIP_META.match(name) or (
                "/" not in name and name.startswith(meta_prefix) and name.endswith(meta_suffix)):
            continue
        data = tar.extractfile(info).read()
        yield {"fname": name, "data": (info.offset_data, data), "__url__": url}
        tar.members = []
