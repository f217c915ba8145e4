"""The ingest pipeline: shuffled on write, parallel workers, resume, several nodes, bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sslkit.data.file_sources import folder_source
from sslkit.data.ingest import ingest, window_shuffle
from tests.data.ingest_helpers import class_folder, read_samples, shard_keys


@pytest.fixture
def classes(tmp_path: Path) -> Path:
    class_folder(tmp_path / "src", num_classes=4, per_class=15)
    return tmp_path / "src"


def _digests(out: Path) -> list[str]:
    return [s["sha256"] for s in json.loads((out / "manifest.json").read_text())["shards"]]


def test_shuffled_by_default_and_recorded(classes: Path, tmp_path: Path) -> None:
    manifest = ingest(folder_source(classes), tmp_path / "a", max_samples_per_shard=20, progress=False).manifest
    assert manifest["shuffle"] == {"seed": 0, "window": None}
    per_shard_classes = [{k.split("_")[0] for k in keys} for keys in shard_keys(tmp_path / "a")]
    assert all(len(c) == 4 for c in per_shard_classes)  # every shard mixes all classes
    again = ingest(folder_source(classes), tmp_path / "b", max_samples_per_shard=20, progress=False).manifest
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")  # seeded: same bytes
    other = ingest(folder_source(classes), tmp_path / "c", max_samples_per_shard=20, seed=1, progress=False)
    assert shard_keys(tmp_path / "c") != shard_keys(tmp_path / "a") and other.manifest["shuffle"]["seed"] == 1
    assert again["class_counts"] == [15] * 4


def test_no_shuffle_keeps_source_order(classes: Path, tmp_path: Path) -> None:
    manifest = ingest(folder_source(classes), tmp_path / "out", max_samples_per_shard=15, shuffle=False,
                      progress=False).manifest
    assert manifest["shuffle"] is None
    keys = [k for shard in shard_keys(tmp_path / "out") for k in shard]
    assert keys == [k for k, _, _ in folder_source(classes)]


def test_window_shuffle_is_a_seeded_permutation() -> None:
    import random

    out = list(window_shuffle(iter(range(1000)), 100, random.Random(3)))
    assert sorted(out) == list(range(1000)) and out != list(range(1000))
    assert out == list(window_shuffle(iter(range(1000)), 100, random.Random(3)))
    assert max(abs(i - v) for i, v in enumerate(out[:500])) > 50  # moved beyond neighbours


def test_two_workers_write_the_same_shards(classes: Path, tmp_path: Path) -> None:
    ingest(folder_source(classes), tmp_path / "one", max_samples_per_shard=7, progress=False)
    report = ingest(folder_source(classes), tmp_path / "two", max_samples_per_shard=7, workers=2, progress=False)
    assert report.num_written == 60 and report.num_tasks == 9
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")


def test_rerun_skips_verified_shards_and_redoes_bad_ones(classes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = ingest(folder_source(classes), out, max_samples_per_shard=10, progress=False)
    names = [s["name"] for s in first.manifest["shards"]]
    (out / names[1]).unlink()  # killed before this one was written, say
    with open(out / names[2], "r+b") as f:  # or a shard damaged since
        f.seek(700)
        f.write(b"\xff" * 8)
    (out / "manifest.json").unlink()
    again = ingest(folder_source(classes), out, max_samples_per_shard=10, progress=False)
    assert again.num_resumed == 4 and again.num_tasks == 6
    assert _digests(out) == [s["sha256"] for s in first.manifest["shards"]]
    assert not [n for n in os.listdir(out) if ".tmp-" in n]
    changed = ingest(folder_source(classes), out, max_samples_per_shard=10, seed=5, progress=False)
    assert changed.num_resumed == 0  # another plan: nothing kept


def test_nodes_write_disjoint_shards_and_the_last_merges(classes: Path, tmp_path: Path) -> None:
    single = ingest(folder_source(classes), tmp_path / "single", max_samples_per_shard=8, progress=False)
    out = tmp_path / "multi"
    node0 = ingest(folder_source(classes), out, max_samples_per_shard=8, num_nodes=2, node_rank=0, progress=False)
    assert node0.manifest is None and not (out / "manifest.json").exists()
    shards = [f"src-{i:06d}.tar" for i in (0, 2, 4, 6)]
    assert sorted(os.listdir(out)) == sorted([".parts", *shards, *(f"{s}.idx.json" for s in shards)])
    node1 = ingest(folder_source(classes), out, max_samples_per_shard=8, num_nodes=2, node_rank=1, progress=False)
    assert node1.num_tasks == 4 and node1.manifest == single.manifest


def test_byte_limit_splits_a_task_into_parts(classes: Path, tmp_path: Path) -> None:
    limit = 20_000
    manifest = ingest(folder_source(classes), tmp_path / "out", max_samples_per_shard=30,
                      max_shard_bytes=limit, progress=False).manifest
    names = [s["name"] for s in manifest["shards"]]
    assert len(names) > 2 and "src-000000-01.tar" in names and manifest["num_samples"] == 60
    assert all((tmp_path / "out" / n).stat().st_size <= limit for n in names)


def test_one_bad_file_in_a_thousand(tmp_path: Path) -> None:
    """Acceptance 3: 999 samples written, the bad one listed with its reason, the rest intact."""
    files = class_folder(tmp_path / "src", num_classes=10, per_class=100)
    bad = tmp_path / "src" / "c4" / "img437.JPEG"
    bad.write_bytes(files["c4/img437.JPEG"][:900])  # truncated mid-scan
    report = ingest(folder_source(tmp_path / "src"), tmp_path / "out", workers=2, progress=False)
    assert report.num_written == 999 and report.num_skipped == 1 and report.manifest["num_skipped"] == 1
    (skipped,) = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert skipped["path"] == str(bad) and "decode" in skipped["reason"]
    samples = read_samples(tmp_path / "out")
    assert "c4_img437" not in samples and len(samples) == 999
    assert samples["c4_img436"]["jpg"] == files["c4/img436.JPEG"]
    assert "1 skipped (listed in" in report.summary(tmp_path / "out")
