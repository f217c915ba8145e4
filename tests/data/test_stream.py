"""Streaming reader: exact epochs over ranks x workers, corrupt data, exact mid-epoch resume."""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from sslkit.data.collate import single_view
from sslkit.data.datamodule import build_eval_loader
from sslkit.data.sample_index import INDEX_SUFFIX
from sslkit.data.loader import ShardLoader
from sslkit.data.stream import ShardStream
from tests.data.helpers import MakeShards, rewrite_shard, synthetic_image


@pytest.fixture(params=["indexed", "streamed"])
def make_shards(request: pytest.FixtureRequest, make_shards: MakeShards) -> MakeShards:
    """Every test here runs on indexed shards (read by offset) and on shards without an index (streamed)."""

    def make(*args, **kwargs) -> Path:  # noqa: ANN002, ANN003
        out = make_shards(*args, **kwargs)
        if request.param == "streamed":
            for index in out.glob(f"*{INDEX_SUFFIX}"):
                index.unlink()
        return out

    return make


def _epoch_keys(shards: Path, *, world_size: int, num_workers: int, batch_size: int, epochs: int = 1,
                remainder: str = "drop") -> list[list[list[str]]]:
    """keys[epoch][rank] in delivery order, checking every rank gets len(loader) full batches."""
    loaders = []
    for rank in range(world_size):
        stream = ShardStream(shards, batch_size=batch_size, rank=rank, world_size=world_size,
                             shuffle_buffer=16, remainder=remainder, transform=single_view)
        loaders.append(ShardLoader(stream, num_workers=num_workers))
    result = []
    for _ in range(epochs):
        per_rank = []
        for loader in loaders:
            batches = list(loader)
            assert len(batches) == len(loader)
            assert all(b["views"][0].shape == (batch_size, 3, 8, 8) for b in batches)
            assert all(len(b["key"]) == batch_size == len(b["label"]) for b in batches)
            per_rank.append([k for b in batches for k in b["key"]])
        result.append(per_rank)
    return result


def test_two_ranks_two_workers_every_sample_once_and_reshuffled(make_shards: MakeShards) -> None:
    shards = make_shards(100, per_shard=10)
    epochs = _epoch_keys(shards, world_size=2, num_workers=2, batch_size=4, epochs=2)
    for per_rank in epochs:
        assert len(per_rank[0]) == len(per_rank[1]) == 12 * 4  # drop: 100 // (2 * 4) = 12 batches
        seen = Counter(k for keys in per_rank for k in keys)
        assert max(seen.values()) == 1 and len(seen) == 96
    assert epochs[0][0] != epochs[1][0]
    dropped = [set(f"s{i:05d}" for i in range(100)) - set(sum(per_rank, [])) for per_rank in epochs]
    assert dropped[0] != dropped[1]  # the dropped tail differs between epochs


def test_fewer_shards_than_ranks_times_workers(make_shards: MakeShards) -> None:
    shards = make_shards(30, per_shard=15)  # 2 shards for 2 ranks x 2 workers
    (per_rank,) = _epoch_keys(shards, world_size=2, num_workers=2, batch_size=3)
    assert len(per_rank[0]) == len(per_rank[1]) == 15
    assert sorted(per_rank[0] + per_rank[1]) == [f"s{i:05d}" for i in range(30)]


def test_pad_policy_covers_everything(make_shards: MakeShards) -> None:
    shards = make_shards(30, per_shard=7)
    (per_rank,) = _epoch_keys(shards, world_size=2, num_workers=2, batch_size=4, remainder="pad")
    seen = Counter(per_rank[0] + per_rank[1])
    assert len(per_rank[0]) == len(per_rank[1]) == 16 and len(seen) == 30 and sum(seen.values()) == 32


def test_eval_loader_exactly_once_pixels_and_labels(make_shards: MakeShards) -> None:
    shards = make_shards(23, per_shard=5)
    loader = build_eval_loader(str(shards / "train-{000000..000004}.tar"), None, batch_size=4, num_workers=2)
    batches = list(loader)
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == [f"s{i:05d}" for i in range(23)]
    assert [len(b["key"]) for b in batches] == [4, 4, 4, 4, 4, 3]
    assert keys == [k for b in build_eval_loader(shards, None, 4, 2) for k in b["key"]]  # deterministic
    for batch in batches:
        for key, image, label in zip(batch["key"], batch["image"], batch["label"]):
            i = int(key[1:])
            expected = np.asarray(synthetic_image(i), dtype=np.float32) / 255.0
            assert np.allclose(image.permute(1, 2, 0).numpy(), expected) and int(label) == i % 10


def _corrupt(shards: Path) -> None:
    """Truncate shard 1 mid-way; replace the image of sample s00025 (shard 2) with junk bytes."""
    manifest = json.loads((shards / "manifest.json").read_text())
    path = shards / manifest["shards"][1]["name"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 + 100])
    # the junk sample was written before the manifest (and the index, if the set has them)
    rewrite_shard(shards, 2, [(f"s{i:05d}", "png", b"definitely not a png" if i == 25 else _png(i), i % 10)
                              for i in range(20, 30)])


def _png(i: int) -> bytes:
    import io

    buffer = io.BytesIO()
    synthetic_image(i).save(buffer, format="PNG")
    return buffer.getvalue()


def test_corrupt_data_skipped_counted_logged(make_shards: MakeShards, caplog: pytest.LogCaptureFixture) -> None:
    shards = make_shards(40, per_shard=10)
    _corrupt(shards)
    stream = ShardStream(shards, batch_size=5, shuffle=False, remainder="none")
    with caplog.at_level(logging.WARNING, logger="sslkit.data.stream"):
        batches = list(ShardLoader(stream, num_workers=0))
    assert [len(b["key"]) for b in batches] == [5] * 8  # batch count and size kept by filling
    keys = {k for b in batches for k in b["key"]}
    assert {f"s{i:05d}" for i in range(30, 40)} <= keys  # iteration went on past both bad shards
    assert "s00025" not in keys and "s00019" not in keys
    counters = stream.counters()
    # the sample cut by the truncation (if any) is skipped too: tar ends silently mid-sample
    assert counters["data/corrupt_shards"] == 1 and counters["data/skipped_samples"] in (1, 2)
    assert counters["data/filled_samples"] == 40 - len(keys)
    assert "train-000001.tar" in caplog.text and "s00025" in caplog.text


def test_corrupt_counters_surface_from_workers(make_shards: MakeShards) -> None:
    shards = make_shards(40, per_shard=10)
    _corrupt(shards)
    stream = ShardStream(shards, batch_size=5, rank=1, world_size=2, shuffle_buffer=8)
    loader = ShardLoader(stream, num_workers=2)
    assert sum(1 for _ in loader) == len(loader) == 4
    other = ShardStream(shards, batch_size=5, rank=0, world_size=2, shuffle_buffer=8)
    assert sum(1 for _ in ShardLoader(other, num_workers=2)) == 4
    total = {k: stream.counters()[k] + other.counters()[k] for k in stream.counters()}
    assert total["data/corrupt_shards"] >= 1 and total["data/skipped_samples"] >= 1


@pytest.mark.parametrize("consumed", [0, 7, 8])
@pytest.mark.parametrize("world_size", [1, 2])
def test_resume_mid_epoch_with_workers(make_shards: MakeShards, consumed: int, world_size: int) -> None:
    shards = make_shards(100, per_shard=10)
    rank = world_size - 1

    def loader() -> ShardLoader:
        stream = ShardStream(shards, batch_size=4, rank=rank, world_size=world_size, shuffle_buffer=16, seed=3)
        return ShardLoader(stream, num_workers=2)

    reference = loader()
    list(reference)  # epoch 0; resume inside epoch 1
    full = [b["key"] for b in reference]
    first = loader()
    first.dataset.set_epoch(1)
    before = [b["key"] for b in islice(first, consumed)]
    state = first.dataset.state_dict()
    assert state["epoch"] == 1 and state["batches_consumed"] == consumed

    resumed = loader()
    resumed.dataset.load_state_dict(state)
    after = [b["key"] for b in resumed]
    assert before + after == full
    assert resumed.dataset.state_dict()["epoch"] == 2  # the epoch completed


def test_resume_skips_without_decoding(make_shards: MakeShards, monkeypatch: pytest.MonkeyPatch) -> None:
    shards = make_shards(60, per_shard=10)
    decoded = []
    original = ShardStream._decode
    monkeypatch.setattr(ShardStream, "_decode", lambda self, raw, row: decoded.append(raw) or original(self, raw, row))
    stream = ShardStream(shards, batch_size=4, shuffle_buffer=8)
    stream.load_state_dict(stream.state_dict(batches_consumed=10))
    batches = list(ShardLoader(stream, num_workers=0))
    assert len(batches) == 15 - 10 and len(decoded) == 5 * 4


def test_resume_with_another_seed_restarts_epoch(make_shards: MakeShards, caplog: pytest.LogCaptureFixture) -> None:
    shards = make_shards(40, per_shard=10)
    stream = ShardStream(shards, batch_size=4)
    with caplog.at_level(logging.WARNING):
        stream.load_state_dict({**stream.state_dict(batches_consumed=3), "seed": 8})
    assert "seed changed" in caplog.text
    assert sum(1 for _ in ShardLoader(stream)) == 10


def _loaders(shards: Path, world_size: int, num_workers: int, batch_size: int = 4) -> list[ShardLoader]:
    return [ShardLoader(ShardStream(shards, batch_size=batch_size, rank=r, world_size=world_size, shuffle_buffer=16,
                                    seed=3), num_workers=num_workers) for r in range(world_size)]


@pytest.mark.parametrize("before,after", [((2, 2), (1, 3)), ((1, 2), (3, 1))])
def test_elastic_resume_every_remaining_sample_once(make_shards: MakeShards, before: tuple, after: tuple) -> None:
    shards = make_shards(100, per_shard=10)
    first = _loaders(shards, *before)
    consumed = Counter(k for loader in first for b in islice(loader, 5) for k in b["key"])
    state = first[0].dataset.state_dict()
    assert state["phases"] == [[before[0], before[1], 4, 5]]
    resumed = _loaders(shards, *after)
    for loader in resumed:
        loader.dataset.load_state_dict(state)
    lengths = {len(loader) for loader in resumed}
    rest = [[k for b in loader for k in b["key"]] for loader in resumed]
    assert lengths == {5 + len(rest[0]) // 4} and len({len(r) for r in rest}) == 1  # same steps on every rank
    seen = consumed + Counter(k for keys in rest for k in keys)
    assert max(seen.values()) == 1 and 100 - len(seen) < after[0] * 4
    assert resumed[0].dataset.state_dict()["epoch"] == 1  # the interrupted epoch completed
    following = [[k for b in loader for k in b["key"]] for loader in resumed]  # later epochs: the new world
    assert len(following[0]) == 100 // (after[0] * 4) * 4


def test_counters_and_corrupt_marks_survive_resume(make_shards: MakeShards) -> None:
    shards = make_shards(40, per_shard=10)
    _corrupt(shards)
    stream = ShardStream(shards, batch_size=5, shuffle=True, shuffle_buffer=8)
    list(ShardLoader(stream, num_workers=2))
    list(ShardLoader(stream, num_workers=2))  # a second epoch: the marked shard is not counted again
    assert stream.counters()["data/corrupt_shards"] == 1
    state = stream.state_dict()
    resumed = ShardStream(shards, batch_size=5, shuffle=True, shuffle_buffer=8)
    resumed.load_state_dict(state)
    assert resumed.counters() == stream.counters()
    list(ShardLoader(resumed, num_workers=1))
    assert resumed.counters()["data/corrupt_shards"] == 1
    assert resumed.counters()["data/skipped_samples"] >= stream.counters()["data/skipped_samples"]


def test_truncated_tar_without_manifest_is_skipped(make_shards: MakeShards, caplog: pytest.LogCaptureFixture) -> None:
    shards = make_shards(30, per_shard=10)
    (shards / "manifest.json").unlink()
    path = shards / "train-000001.tar"
    path.write_bytes(path.read_bytes()[:3000])
    with caplog.at_level(logging.WARNING):
        stream = ShardStream(str(shards / "train-{000000..000002}.tar"), batch_size=4, shuffle=False,
                             remainder="none")
        keys = [k for b in ShardLoader(stream) for k in b["key"]]
    assert {f"s{i:05d}" for i in (*range(10), *range(20, 30))} <= set(keys)
    assert "train-000001.tar" in caplog.text


def test_swapped_shard_detected_by_sha256(make_shards: MakeShards, caplog: pytest.LogCaptureFixture) -> None:
    # Issue #13 item 7: a shard overwritten by a copy of another (same count, valid tar) is caught by
    # its sha256 computed while it is streamed, or (indexed) by the digest of the first sample read
    # from it; counted once and named once.
    shards = make_shards(40, per_shard=10)
    (shards / "train-000002.tar").write_bytes((shards / "train-000000.tar").read_bytes())
    stream = ShardStream(shards, batch_size=4, shuffle_buffer=8)
    with caplog.at_level(logging.WARNING, logger="sslkit.data.stream"):  # workers log in their processes
        list(ShardLoader(stream, num_workers=0))
        list(ShardLoader(stream, num_workers=0))
    list(ShardLoader(stream, num_workers=2))
    assert stream.counters()["data/corrupt_shards"] == 1
    named = [r.message for r in caplog.records if "train-000002.tar" in r.message]
    assert len(named) == 1 and ("sha256" in named[0] or "differs from the shard's index" in named[0])


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_set_with_no_readable_shard_ends_in_one_line(make_shards: MakeShards, num_workers: int) -> None:
    from sslkit.errors import UserError, one_line

    shards = make_shards(20, per_shard=10)
    for record in json.loads((shards / "manifest.json").read_text())["shards"]:
        path = shards / record["name"]
        path.write_bytes(b"\0" * path.stat().st_size)  # same size, nothing readable
    stream = ShardStream(shards, batch_size=5, shuffle=False, remainder="none")
    before = set(multiprocessing.active_children())
    with pytest.raises(UserError) as caught:
        list(ShardLoader(stream, num_workers=num_workers))
    # the failed iterator lives on in the traceback; its workers (which ignore SIGTERM) must be gone,
    # or the exit-time terminate + join of multiprocessing would wait on them forever
    assert set(multiprocessing.active_children()) <= before
    message = one_line(caught.value)
    assert message.startswith("no decodable sample in any of the 2 shards") and "sslkit data verify" in message
    assert "\n" not in message and "Traceback" not in message


def test_the_process_exits_while_a_loader_with_workers_is_still_alive(make_shards: MakeShards) -> None:
    """Workers ignore SIGTERM; an iterator alive at exit (here a global, as a traceback can hold one)
    must not leave multiprocessing's exit-time terminate + join waiting on them."""
    import subprocess
    import sys
    import textwrap

    shards = make_shards(20, per_shard=10)
    script = textwrap.dedent(f"""
        from sslkit.data.loader import ShardLoader
        from sslkit.data.stream import ShardStream
        stream = ShardStream({str(shards)!r}, batch_size=5, shuffle=False)
        batches = iter(ShardLoader(stream, num_workers=2))
        next(batches)
        raise SystemExit(3)
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
