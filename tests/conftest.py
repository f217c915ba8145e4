"""Shared pytest fixtures: markers that skip without hardware, and the optional real datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SSLKIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


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
