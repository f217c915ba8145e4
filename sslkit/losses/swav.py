"""SwAV loss: Caron et al., 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments"."""

from __future__ import annotations

import torch
from lightly.loss import SwaVLoss as LightlySwaVLoss


class SwAVLoss(LightlySwaVLoss):
    """lightly's ``SwaVLoss`` (swapped prediction of Sinkhorn codes, Eq. 3; the official loop, including
    queue columns that enter Sinkhorn and are dropped after), with the crop lists checked first and
    Sinkhorn over the global batch (``sinkhorn_gather_distributed=True``, as the official code).

    Args:
        temperature: Softmax temperature of the predictions (0.1).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (3).
        sinkhorn_epsilon: Entropic regularisation of the codes (0.05).
    """

    def __init__(self, temperature: float = 0.1, sinkhorn_iterations: int = 3, sinkhorn_epsilon: float = 0.05) -> None:
        super().__init__(temperature=temperature, sinkhorn_iterations=sinkhorn_iterations,
                         sinkhorn_epsilon=sinkhorn_epsilon, sinkhorn_gather_distributed=True)

    def forward(self, high_resolution_outputs: list[torch.Tensor], low_resolution_outputs: list[torch.Tensor],
                queue_outputs: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Mean over high-resolution crops ``i`` of the CE from ``i``'s codes to every other crop's scores.

        Args:
            high_resolution_outputs: ``(B, K)`` prototype scores per global crop (codes are computed for these).
            low_resolution_outputs: ``(B, K)`` prototype scores per local crop.
            queue_outputs: ``(Q, K)`` prototype scores of each global crop's queue, or ``None``.
        """
        shapes = [tuple(t.shape) for t in (*high_resolution_outputs, *low_resolution_outputs)]
        if not high_resolution_outputs or any(len(s) != 2 or s != shapes[0] for s in shapes):
            raise ValueError(f"SwAVLoss: expected one (B, K) shape for every crop, got {shapes}")
        if len(shapes) < 2:
            raise ValueError("SwAVLoss: needs at least two crops (one to code, one to predict it)")
        if queue_outputs is not None and (len(queue_outputs) != len(high_resolution_outputs)
                                          or any(q.ndim != 2 or q.shape[1] != shapes[0][1] for q in queue_outputs)):
            raise ValueError(f"SwAVLoss: expected one (Q, {shapes[0][1]}) queue per global crop, got "
                             f"{[tuple(q.shape) for q in queue_outputs]}")
        return super().forward(high_resolution_outputs, low_resolution_outputs, queue_outputs).squeeze(0)
