"""Fixtures for data tests: small shard sets written into ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslkit.data.writer import ShardWriter
from tests.data.helpers import MakeShards, synthetic_image


@pytest.fixture
def make_shards(tmp_path: Path) -> MakeShards:
    """Write ``num_samples`` synthetic samples (labels ``i % 10``) into shards of ``per_shard``."""

    def make(num_samples: int, per_shard: int, name: str = "train", labels: bool = True) -> Path:
        out = tmp_path / name
        with ShardWriter(out, prefix=name, max_samples_per_shard=per_shard) as writer:
            for i in range(num_samples):
                writer.write(f"s{i:05d}", synthetic_image(i), i % 10 if labels else None)
            writer.close(class_names=[str(c) for c in range(10)] if labels else None, source="synthetic")
        return out

    return make
