"""What issue #16's methods compute across ranks, on two real gloo processes (CPU, a few seconds).

- ``FeatureQueue`` (NNCLR's support set, SwAV's queues): every rank enqueues every rank's batch, so
  the queues are identical and equal the single-process queue of the concatenated batches.
- DINOv2's Sinkhorn-Knopp (log domain) on each rank's half of a batch equals the single-process
  assignment of the whole batch (the all-reduced row sums make it one global problem).
- MSN's me-max regulariser uses the global mean anchor probabilities: two ranks' losses average to the
  single-process loss's regulariser part.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sslkit.losses import FeatureQueue, MSNLoss, TeacherCentering

BATCH, DIM, K = 6, 4, 5


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 2 * BATCH, DIM, generator=g)  # 3 steps of a global batch of 2 x BATCH
    logits = torch.randn(2 * BATCH, K, generator=g) * 4
    anchors, prototypes = torch.randn(2 * BATCH, DIM, generator=g), torch.randn(K, DIM, generator=g)
    return feats, logits, anchors, prototypes


def _worker(rank: int, out: Path) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{out / 'rendezvous'}", rank=rank, world_size=2)
    feats, logits, anchors, prototypes = _data()
    mine = slice(rank * BATCH, (rank + 1) * BATCH)
    queue = FeatureQueue(16, DIM)
    for step in feats:
        queue.enqueue(step[mine])
    probs = TeacherCentering(K, mode="sinkhorn_knopp")(logits[mine], 0.04)
    msn = MSNLoss(sinkhorn_iterations=0, regularization_weight=1.0)
    reg = msn.regularization_loss(torch.softmax(anchors[mine] @ prototypes.T / 0.1, dim=1).mean(0))
    torch.save({"bank": queue.bank, "ptr": int(queue.bank_ptr), "probs": probs, "reg": reg}, out / f"rank{rank}.pt")
    torch.distributed.barrier()
    os._exit(0)  # no interpreter finalisation: gloo's teardown can race (tests/distributed/test_zero_ema.py)


@pytest.mark.slow  # two spawned interpreters import torch + lightly: ~20 s idle, more on a busy machine
def test_queue_sinkhorn_and_me_max_are_global(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(tmp_path,), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    feats, logits, anchors, prototypes = _data()
    single = FeatureQueue(16, DIM)
    for step in feats:
        single.enqueue(step)
    for r in ranks:
        torch.testing.assert_close(r["bank"], single.bank)  # same queue on every rank, rank-major per step
        assert r["ptr"] == int(single.bank_ptr)
    whole = TeacherCentering(K, mode="sinkhorn_knopp")(logits, 0.04)
    torch.testing.assert_close(torch.cat([r["probs"] for r in ranks]), whole)
    expected = MSNLoss(sinkhorn_iterations=0).regularization_loss(
        torch.softmax(anchors @ prototypes.T / 0.1, dim=1).mean(0))
    for r in ranks:
        torch.testing.assert_close(r["reg"], expected)
