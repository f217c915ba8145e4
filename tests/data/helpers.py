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
