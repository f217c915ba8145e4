"""Fixtures for distributed tests: digit shards small enough for a few CPU steps per epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslkit.data import ImageSource, open_source, write_shards

NUM_SAMPLES = 64


@pytest.fixture(scope="session")
def digit_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 real 32-px digits in four shards of 16 (the folder holds manifest.json)."""
    out = tmp_path_factory.mktemp("digit_shards")
    source = open_source("digits", split="train", size=32)
    samples = [s for _, s in zip(range(NUM_SAMPLES), source)]
    subset = ImageSource(source.name, source.class_names, len(samples), lambda: iter(samples))
    write_shards(subset, out, prefix="digits", max_samples_per_shard=16, progress=False)
    return out


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A real single-node SLURM (munged, slurmctld, slurmd on localhost), installed with apt if missing.

    Skipped only where the packages cannot be installed (no root or no apt-get).
    """
    from tests.distributed.local_slurm import LocalSlurm, SlurmUnavailable

    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        cluster.stop()
        pytest.skip(str(exc))
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()
