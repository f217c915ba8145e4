"""Shard writer: round trip, manifest, shard-size limits."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image
from webdataset.tariterators import group_by_keys, tar_file_iterator

from sslkit.data.writer import ShardWriter
from tests.data.helpers import MakeShards, synthetic_image


def _read_shard(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        return list(group_by_keys({**m, "__url__": str(path)} for m in tar_file_iterator(f)))


def test_round_trip_bytes_labels_keys_and_manifest(tmp_path: Path) -> None:
    written = {}
    with ShardWriter(tmp_path, prefix="train", max_samples_per_shard=4) as writer:
        for i in range(10):
            image = synthetic_image(i)
            writer.write(f"k{i}", image, i if i % 3 else None)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            written[f"k{i}"] = (buffer.getvalue(), i if i % 3 else None)
        manifest = writer.close(class_names=["a", "b"], source="test")

    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    assert set(manifest) == {"shards", "num_samples", "class_names", "image_size", "image_format", "source"}
    assert manifest["num_samples"] == 10 and manifest["class_names"] == ["a", "b"]
    assert manifest["image_size"] == [8, 8] and manifest["image_format"] == "png" and manifest["source"] == "test"
    assert [s["name"] for s in manifest["shards"]] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert [s["num_samples"] for s in manifest["shards"]] == [4, 4, 2]

    read = {}
    for shard in manifest["shards"]:
        path = tmp_path / shard["name"]
        assert shard["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert shard["num_bytes"] == path.stat().st_size
        samples = _read_shard(path)
        assert len(samples) == shard["num_samples"]
        for s in samples:
            read[s["__key__"]] = (s["png"], int(s["cls"]) if "cls" in s else None)
    assert read == written
    assert not list(tmp_path.glob(".*tmp*")), "temp files left behind"


def test_shard_byte_limit_respected(tmp_path: Path) -> None:
    limit = 60_000
    with ShardWriter(tmp_path, max_samples_per_shard=10_000, max_shard_bytes=limit) as writer:
        for i in range(200):
            writer.write(f"k{i}", synthetic_image(i, size=16), i)
        manifest = writer.close()
    assert len(manifest["shards"]) > 1
    assert sum(s["num_samples"] for s in manifest["shards"]) == 200
    for shard in manifest["shards"]:
        assert (tmp_path / shard["name"]).stat().st_size <= limit


def test_jpg_format_and_deterministic_bytes(tmp_path: Path) -> None:
    digests = []
    for run in ("a", "b"):
        with ShardWriter(tmp_path / run, image_format="jpg", quality=90) as writer:
            for i in range(3):
                writer.write(f"k{i}", synthetic_image(i), i)
            digests.append(writer.close()["shards"][0]["sha256"])
    assert digests[0] == digests[1]  # mtime 0: same input, same shard
    with tarfile.open(tmp_path / "a" / "shard-000000.tar") as tar:
        names = tar.getnames()
        assert names == ["k0.cls", "k0.jpg", "k1.cls", "k1.jpg", "k2.cls", "k2.jpg"]
        assert Image.open(tar.extractfile("k0.jpg")).format == "JPEG"


def test_bad_key_rejected(tmp_path: Path) -> None:
    with ShardWriter(tmp_path) as writer, pytest.raises(ValueError, match="key"):
        writer.write("a.b", synthetic_image(0), 0)


def test_fixture_shards_readable(make_shards: MakeShards) -> None:
    out = make_shards(7, per_shard=3)
    assert json.loads((out / "manifest.json").read_text())["num_samples"] == 7
