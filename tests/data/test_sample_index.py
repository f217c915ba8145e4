"""Indexed shards: the writer's sample index, reading by offset, integrity per sample, i.i.d. batches."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslkit.data.collate import single_view
from sslkit.data.sample_index import INDEX_SUFFIX, read_index, sample_digest
from sslkit.data.shard_reader import IndexedShardReader
from sslkit.data.loader import ShardLoader
from sslkit.data.stream import ShardStream
from sslkit.data.writer import ShardWriter
from tests.data.helpers import MakeShards


def test_index_offsets_are_the_tar_offsets(tmp_path: Path) -> None:
    keys = ["a", "caf\u00e9_" * 4, "x" * 150, "b"]  # plain, non-ASCII (PAX header) and long (PAX) names
    with ShardWriter(tmp_path, prefix="t", max_samples_per_shard=3) as writer:
        for i, key in enumerate(keys):
            writer.write(key, Image.new("RGB", (8 + i, 8), (i, 0, 0)), i)
        writer.close()
    seen = []
    for shard in sorted(tmp_path.glob("t-*.tar")):
        index = read_index(f"{shard}{INDEX_SUFFIX}")
        with tarfile.open(shard) as tar:
            members = {m.name: m for m in tar.getmembers()}
            for i, key in enumerate(index.keys):
                row, digest = index.members(i), index.digest(i)
                data = {}
                for ext, offset, size in row:
                    info = members[f"{key}.{ext}"]
                    assert (info.offset_data, info.size) == (offset, size)
                    data[ext] = tar.extractfile(info).read()
                assert sample_digest(data) == digest
        assert index.num_bytes == shard.stat().st_size
        seen += index.keys
    assert seen == keys


def test_indexed_reader_any_order_and_bad_indexes(make_shards: MakeShards, tmp_path: Path) -> None:
    shards = make_shards(20, per_shard=10)
    manifest = json.loads((shards / "manifest.json").read_text())
    first, second = (shards / s["name"] for s in manifest["shards"])
    info = manifest["shards"][0]
    reader = IndexedShardReader(str(first), 10, info["sha256"], f"{first}{INDEX_SUFFIX}")
    assert [reader.get(i)["__key__"] for i in (7, 2, 9, 0)] == ["s00007", "s00002", "s00009", "s00000"]
    assert int(reader.get(3)["cls"]) == 3 and reader.error is None
    reader.close()
    assert reader.get(4)["__key__"] == "s00004"  # reopens after close
    # the index of another shard
    other = IndexedShardReader(str(first), 10, info["sha256"], f"{second}{INDEX_SUFFIX}")
    assert other.get(0) is None and "another shard" in other.error
    # an index pointing outside the file is refused as data, not followed
    bad = json.loads(Path(f"{first}{INDEX_SUFFIX}").read_text())
    bad["offsets"][0] = 10**12
    (tmp_path / "bad.idx.json").write_text(json.dumps(bad))
    broken = IndexedShardReader(str(first), 10, info["sha256"], str(tmp_path / "bad.idx.json"))
    assert broken.get(1) is None and "outside the shard" in broken.error
    # flipped bytes inside one image
    data = bytearray(first.read_bytes())
    offset = dict((e, o) for e, o, _ in read_index(f"{first}{INDEX_SUFFIX}").members(5))["png"]
    data[offset + 40] ^= 0xFF
    first.write_bytes(bytes(data))
    flipped = IndexedShardReader(str(first), 10, info["sha256"], f"{first}{INDEX_SUFFIX}")
    assert flipped.get(4) is not None and flipped.get(5) is None and "s00005" in flipped.error


def test_truncated_indexed_shard_is_marked_corrupt(make_shards: MakeShards, caplog: pytest.LogCaptureFixture) -> None:
    shards = make_shards(30, per_shard=10)
    path = shards / "train-000001.tar"
    path.write_bytes(path.read_bytes()[:3000])
    stream = ShardStream(shards, batch_size=5, shuffle=False, remainder="none")
    with caplog.at_level(logging.WARNING, logger="sslkit.data.stream"):
        keys = {k for b in ShardLoader(stream) for k in b["key"]}
    assert {f"s{i:05d}" for i in (*range(10), *range(20, 30))} <= keys
    assert stream.counters()["data/corrupt_shards"] == 1 and "truncated or replaced" in caplog.text


def test_class_sorted_shards_read_as_iid_batches(tmp_path: Path) -> None:
    # Issue #13 acceptance 2, through the real reader: 40 classes of 15 written class after class
    # into 3 shards of 200 (each ~13 classes in order); batches of 32 at the defaults.
    with ShardWriter(tmp_path / "sorted", prefix="train", max_samples_per_shard=200) as writer:
        for i in range(600):
            writer.write(f"s{i:05d}", Image.new("RGB", (4, 4)), i // 15)
        writer.close(class_names=[str(c) for c in range(40)])
    stream = ShardStream(tmp_path / "sorted", batch_size=32, transform=single_view)
    assert stream.random_access and stream.mix_shards == 3  # all shards: one permutation
    distinct = [len(set(b["label"].tolist())) for b in ShardLoader(stream, num_workers=2)]
    iid = sum(1 - np.prod([(600 - 15 - j) / (600 - j) for j in range(32)]) for _ in range(40))
    assert np.mean(distinct) >= 0.95 * iid
