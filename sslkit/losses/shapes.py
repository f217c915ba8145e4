"""Shape checks shared by the losses: fail with the tensors' names and shapes, not deep in a matmul."""

from __future__ import annotations

import torch


def check_pair(z_a: torch.Tensor, z_b: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``z_a`` and ``z_b`` are both ``(B, D)`` with ``B > 1``."""
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"{name}: expected two (B, D) tensors of one shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.shape[0] < 2:
        raise ValueError(f"{name}: needs a batch of at least 2, got {z_a.shape[0]}")
