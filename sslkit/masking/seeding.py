"""Per-batch random generators for mask samplers, reproducible from a seed.

A masking collator runs inside a dataloader worker and only sees the samples of one batch. Which
samples form a batch is fixed by the data seed, the epoch, the rank, the worker and the batch's
position (``sslkit.data.plan``), and every sample key is unique, so seeding from ``(seed, keys)``
gives masks that are a pure function of ``(seed, epoch, rank, worker, batch)``: the same on a
re-run, identical after a mid-epoch resume, and independent of how many workers there are.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info


def batch_seed(seed: int, keys: Sequence[str]) -> int:
    """A 63-bit seed from ``seed`` and the batch's sample keys."""
    if not keys:
        raise ValueError("a seeded collator needs the samples' 'key' entries to seed its generator")
    digest = zlib.crc32("\x1f".join(keys).encode("utf-8"))
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, digest, len(keys)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) & 0x7FFFFFFF) << 32 | int(state[1])


def batch_generator(seed: int, keys: Sequence[str]) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`batch_seed`."""
    return torch.Generator().manual_seed(batch_seed(seed, keys))


def worker_id() -> int:
    """The dataloader worker this code runs in, ``-1`` in the main process."""
    info = get_worker_info()
    return info.id if info is not None else -1
