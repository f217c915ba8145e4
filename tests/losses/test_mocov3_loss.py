"""MoCo v3 loss: golden values from the official code's ``contrastive_loss``; invariants."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sslkit.losses import mocov3_loss


def _official_contrastive_loss(q: torch.Tensor, k: torch.Tensor, t: float) -> torch.Tensor:
    """``MoCo.contrastive_loss`` from facebookresearch/moco-v3 ``moco/builder.py`` (one process)."""
    q = nn.functional.normalize(q, dim=1)
    k = nn.functional.normalize(k, dim=1)
    logits = torch.einsum("nc,mc->nm", [q, k]) / t
    labels = torch.arange(logits.shape[0], dtype=torch.long)
    return nn.CrossEntropyLoss()(logits, labels) * (2 * t)


def test_loss_matches_official_code() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(8, 16), torch.randn(8, 16)
    for t in (0.2, 1.0):
        expected = _official_contrastive_loss(q, k, t)
        torch.testing.assert_close(mocov3_loss(q, k, t), expected)
    # the official formula's value on these inputs, pinned so a change on either side shows up
    assert math.isclose(float(mocov3_loss(q, k, 0.2)), 0.91174096, rel_tol=1e-5)


def test_loss_invariants() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16)
    mocov3_loss(q, k).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(mocov3_loss(q.detach(), k))
    # the positive pair on the diagonal: identical q and k score lower than shuffled keys
    assert mocov3_loss(k, k) < mocov3_loss(k, k.roll(1, 0))
    with pytest.raises(ValueError, match="mocov3_loss"):
        mocov3_loss(q, k[:, :8])
