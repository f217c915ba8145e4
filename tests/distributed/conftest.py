"""Fixtures for distributed tests: a local SLURM cluster (digit shards come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import NUM_DIGITS

NUM_SAMPLES = NUM_DIGITS  # in tests/conftest.py's digit_shards


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
