"""Shared pytest fixtures: markers that skip without hardware, the optional real datasets, the tiny ViT
every fast test trains and the digit shards objective and distributed tests read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SSLKIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
# The tiny ViT of fast tests: 32-px images in a 4 x 4 grid of 8-px patches, 2 blocks of width 48. Import it
# (``from tests.conftest import TINY_VIT``) and derive variants with ``{**TINY_VIT, "patch_size": 4}``.
TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 48, "num_heads": 3}
NUM_DIGITS = 64  # samples in ``digit_shards``


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason="needs a CUDA device")
    no_data = pytest.mark.skip(reason=f"{SHARED_DATA} is absent")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        if "shared_data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(no_data)


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    # Two cores here and in CI: more threads only add contention.
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data (CIFAR-10, MNIST as originally distributed)."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def digit_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``NUM_DIGITS`` real 32-px digits in four shards of 16 (enough for 2 ranks x 2 workers); holds manifest.json."""
    from sslkit.data import ImageSource, open_source, write_shards

    out = tmp_path_factory.mktemp("digit_shards")
    source = open_source("digits", split="train", size=32)
    samples = [s for _, s in zip(range(NUM_DIGITS), source)]
    subset = ImageSource(source.name, source.class_names, len(samples), lambda: iter(samples))
    write_shards(subset, out, prefix="digits", max_samples_per_shard=16, progress=False)
    return out
