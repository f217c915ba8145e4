"""``sslkit data index DIR``: a set without sample indexes gets the very indexes the writer writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslkit.data.cli import main
from sslkit.data.sample_index import INDEX_SUFFIX
from sslkit.data.stream import ShardStream
from tests.data.helpers import MakeShards


def _indexes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob(f"*{INDEX_SUFFIX}"))}


def test_indexes_equal_the_writers(make_shards: MakeShards, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_shards(25, per_shard=10)
    written = _indexes(folder)
    assert len(written) == 3
    for name in written:
        (folder / name).unlink()
    assert not ShardStream(folder, batch_size=4).random_access  # streamed in tar order without them
    assert main(["index", str(folder), "--no-progress"]) == 0
    assert _indexes(folder) == written  # byte for byte what `sslkit data shard` wrote
    assert "3 shards indexed, 0 already had an index" in capsys.readouterr().out
    assert ShardStream(folder, batch_size=4).random_access
    assert main(["index", str(folder), "--no-progress"]) == 0
    assert "0 shards indexed, 3 already had an index" in capsys.readouterr().out


def test_a_shard_unlike_its_manifest_gets_no_index(make_shards: MakeShards, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_shards(25, per_shard=10)
    for path in folder.glob(f"*{INDEX_SUFFIX}"):
        path.unlink()
    shards = sorted(folder.glob("*.tar"))
    data = bytearray(shards[1].read_bytes())
    data[1024] ^= 0xFF  # inside the first sample's image: still a readable tar, another sha256
    shards[1].write_bytes(bytes(data))
    shards[2].write_bytes(shards[2].read_bytes()[:2048])  # truncated
    assert main(["index", str(folder), "--no-progress"]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2
    assert f"{shards[1].name}: does not match the manifest" in errors[0] and "not indexed" in errors[0]
    assert shards[2].name in errors[1] and "not indexed" in errors[1]
    assert "1 shards indexed, 0 already had an index, 2 FAILED" in captured.out
    assert sorted(_indexes(folder)) == [f"{shards[0].name}{INDEX_SUFFIX}"]


def test_a_compressed_shard_is_not_indexed(make_shards: MakeShards, capsys: pytest.CaptureFixture[str]) -> None:
    import gzip

    folder = make_shards(10, per_shard=10)
    for path in folder.glob(f"*{INDEX_SUFFIX}"):
        path.unlink()
    shard = next(folder.glob("*.tar"))
    shard.write_bytes(gzip.compress(shard.read_bytes()))  # readable by webdataset ("r|*"), no random access
    assert main(["index", str(folder), "--no-progress"]) == 1
    assert "uncompressed tar" in capsys.readouterr().err
    assert not _indexes(folder)
