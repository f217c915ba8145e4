"""Helpers shared by the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

MakeShards = Callable[..., Path]  # the make_shards fixture: (num_samples, per_shard, name=, labels=) -> folder


def synthetic_image(i: int, size: int = 8) -> Image.Image:
    """A small RGB image whose pixels encode ``i`` (distinct images, cheap to encode)."""
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def rewrite_shard(folder: Path, position: int, samples: list[tuple[str, str, bytes, int]]) -> None:
    """Replace shard ``position`` of ``folder``'s manifest with ``samples`` (key, ext, bytes, label).

    Written as ``sslkit data shard`` would (its sample index too, if the set has indexes) and recorded
    in the manifest: the shard is valid, only what the samples hold is bad (say, junk image bytes).
    """
    import json
    import tempfile

    from sslkit.data.writer import ShardWriter

    manifest = json.loads((folder / "manifest.json").read_text())
    name = manifest["shards"][position]["name"]
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        with ShardWriter(tmp, names=lambda i: name) as writer:
            for key, ext, data, label in samples:
                writer.write_encoded(key, ext, data, label, (1, 1))
            (record,) = writer.finish()
        for produced in Path(tmp).iterdir():
            if produced.name == name or (folder / produced.name).exists():  # an index only where there was one
                produced.replace(folder / produced.name)
    manifest["shards"][position].update(record)
    (folder / "manifest.json").write_text(json.dumps(manifest))
