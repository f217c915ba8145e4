"""One writer task (a planned shard) and the merge of finished tasks into ``manifest.json``.

A task is the ``i``-th slice of the (shuffled) sample sequence. A worker process reads, validates
and writes it to ``{prefix}-{i:06d}.tar`` (plus ``-{j:02d}`` parts when ``max_shard_bytes`` splits
it) and records what it did in ``.parts/{prefix}-{i:06d}.json`` beside the shards: the shard records,
the skipped inputs with their reasons, formats, class counts and a digest of the task's keys. A
re-run skips a task whose record has the same key digest and whose shards still match their
sha256; any node can merge once every task of the plan has a record.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sslkit.data.encoding import BadImage, EncodeOptions, encode_sample
from sslkit.data.manifest import write_manifest
from sslkit.data.sources import Sample
from sslkit.data.sample_index import INDEX_SUFFIX
from sslkit.data.writer import ShardWriter, manifest_format
from sslkit.provenance import file_sha256

PARTS_DIR = ".parts"
SKIPPED_NAME = "skipped.jsonl"


@dataclass(frozen=True)
class ShardTask:
    """The samples of planned shard ``index`` and the digest of their keys (what resume compares)."""

    index: int
    samples: list[Sample]
    keys_sha256: str

    @classmethod
    def of(cls, index: int, samples: list[Sample]) -> ShardTask:
        keys = "\n".join(key for key, _, _ in samples)
        return cls(index, samples, hashlib.sha256(keys.encode()).hexdigest())


@dataclass(frozen=True)
class TaskConfig:
    """What every task shares: where to write, shard naming and size, how to encode."""

    out_dir: Path
    prefix: str
    options: EncodeOptions
    max_shard_bytes: int | None = None

    def name(self, index: int) -> str:
        return f"{self.prefix}-{index:06d}"


def run_task(task: ShardTask, config: TaskConfig) -> dict[str, Any]:
    """Write one task's shard(s) unless a verified earlier run did; returns its record."""
    previous = completed_record(task, config)
    if previous is not None:
        return {**previous, "resumed": True}
    base = config.name(task.index)
    skipped, labels, source_bytes, passthrough = [], Counter(), 0, 0
    with ShardWriter(config.out_dir, max_samples_per_shard=len(task.samples) or 1,
                     max_shard_bytes=config.max_shard_bytes, names=partial(part_name, base)) as writer:
        for key, ref, label in task.samples:
            try:
                encoded = encode_sample(ref, config.options)
            except BadImage as exc:
                skipped.append({"path": ref if isinstance(ref, str) else key, "reason": str(exc)})
                continue
            writer.write_encoded(key, encoded.ext, encoded.data, label, encoded.size)
            passthrough += encoded.passthrough
            source_bytes += len(encoded.data) if encoded.passthrough or not isinstance(ref, str) else _size(ref)
            if label is not None:
                labels[int(label)] += 1
        shards = writer.finish()
    record = {
        "task": task.index, "keys_sha256": task.keys_sha256, "num_inputs": len(task.samples),
        "shards": shards, "skipped": skipped, "formats": dict(writer.formats),
        "passthrough": passthrough, "source_bytes": source_bytes,
        "class_counts": {str(k): v for k, v in sorted(labels.items())},
        "image_sizes": sorted([list(s) for s in writer.image_sizes]),
    }
    _write_json(config.out_dir / PARTS_DIR / f"{base}.json", record)
    return {**record, "resumed": False}


def part_name(base: str, part: int) -> str:
    """``base.tar``, then ``base-01.tar``, ... when the byte limit splits a task."""
    return f"{base}.tar" if part == 0 else f"{base}-{part:02d}.tar"


def completed_record(task: ShardTask, config: TaskConfig) -> dict[str, Any] | None:
    """The record of an earlier run of ``task`` if its keys match and its shards verify, else None."""
    path = config.out_dir / PARTS_DIR / f"{config.name(task.index)}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("keys_sha256") != task.keys_sha256:
        return None
    for shard in record["shards"]:
        file = config.out_dir / shard["name"]
        if not file.is_file() or file.stat().st_size != shard["num_bytes"] or file_sha256(file) != shard["sha256"]:
            return None
        if not file.with_name(file.name + INDEX_SUFFIX).is_file():  # written before indexes: rewrite
            return None
    return record


def merge_parts(config: TaskConfig, num_tasks: int, meta: dict[str, Any]) -> dict[str, Any] | None:
    """Write ``manifest.json`` and ``skipped.jsonl`` once all ``num_tasks`` records exist; else None.

    ``meta`` holds the manifest keys the tasks do not know (``source``, ``class_names``, ``shuffle``).
    """
    records = []
    for index in range(num_tasks):
        try:
            records.append(json.loads((config.out_dir / PARTS_DIR / f"{config.name(index)}.json").read_text()))
        except (OSError, ValueError):
            return None
    shards = [s for r in records for s in r["shards"]]
    formats: Counter[str] = sum((Counter(r["formats"]) for r in records), Counter())
    sizes = {tuple(s) for r in records for s in r["image_sizes"]}
    skipped = [s for r in records for s in r["skipped"]]
    counts: Counter[int] = sum((Counter({int(k): v for k, v in r["class_counts"].items()}) for r in records), Counter())
    names = meta.get("class_names")
    num_classes = len(names) if names else (max(counts) + 1 if counts else 0)
    manifest = {
        "shards": shards,
        "num_samples": sum(s["num_samples"] for s in shards),
        "class_names": list(names) if names else None,
        "image_size": list(next(iter(sizes))) if len(sizes) == 1 else None,
        "image_format": manifest_format(formats) or config.options.image_format,
        "source": meta.get("source", ""),
        "image_formats": dict(sorted(formats.items())),
        "class_counts": [counts.get(c, 0) for c in range(num_classes)] if counts else None,
        "shuffle": meta.get("shuffle"),
        "num_skipped": len(skipped),
        "num_passthrough": sum(r["passthrough"] for r in records),
        "source_bytes": sum(r["source_bytes"] for r in records),
    }
    with open(config.out_dir / SKIPPED_NAME, "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in skipped)
    write_manifest(config.out_dir, manifest)
    return manifest


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, path)
