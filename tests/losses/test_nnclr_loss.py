"""NNCLR's support set: ``FeatureQueue`` + ``nearest_neighbours`` against lightly's ``NNMemoryBankModule``."""

from __future__ import annotations

import pytest
import torch
from lightly.models.modules import NNMemoryBankModule

from sslkit.losses import FeatureQueue, nearest_neighbours


def test_lookup_matches_lightly_nn_memory_bank() -> None:
    torch.manual_seed(0)
    lightly_bank, ours = NNMemoryBankModule(size=(16, 8)), FeatureQueue(16, 8)
    for _ in range(3):  # fill both (16 = 2 batches of 8), then query while a third one is enqueued
        batch = torch.randn(8, 8)
        expected = lightly_bank(batch, update=True)
        got = nearest_neighbours(batch, ours.features()) if ours.is_full() else None
        ours.enqueue(batch)
        if got is not None:
            torch.testing.assert_close(got, expected)
    torch.testing.assert_close(ours.bank, lightly_bank.bank)


def test_queue_fifo_wraps_whole_batches_and_checkpoints() -> None:
    queue = FeatureQueue(5, 2)
    assert queue.features().shape == (0, 2) and not queue.is_full()
    queue.enqueue(torch.arange(6.0).view(3, 2))
    queue.enqueue(torch.arange(6.0, 12.0).view(3, 2))  # wraps: rows 3-5 land in slots 3, 4, 0 (lightly drops row 5)
    assert queue.is_full()
    assert queue.bank[:, 0].tolist() == [10.0, 2.0, 4.0, 6.0, 8.0]
    restored = FeatureQueue(5, 2)
    restored.load_state_dict(queue.state_dict())  # bank, pointer and fill count are persistent buffers
    assert torch.equal(restored.bank, queue.bank) and int(restored.bank_ptr) == 1 and restored.is_full()


def test_gradient_and_shapes() -> None:
    z = torch.randn(4, 8, requires_grad=True)
    nn = nearest_neighbours(z, torch.randn(10, 8))
    assert not nn.requires_grad  # the neighbour is a constant; the gradient reaches z through the other term
    with pytest.raises(ValueError, match=r"\(4, 8\) and \(0, 8\)"):
        nearest_neighbours(z, torch.randn(0, 8))
    with pytest.raises(ValueError, match=r"dim=8.*\(4, 6\)"):
        FeatureQueue(5, 8).enqueue(torch.randn(4, 6))
