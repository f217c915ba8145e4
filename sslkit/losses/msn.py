"""MSN loss: Assran et al., 2022, "Masked Siamese Networks for Label-Efficient Learning"."""

from __future__ import annotations

import torch
import torch.distributed as dist
from lightly.loss import MSNLoss as LightlyMSNLoss
from torch.distributed import nn as dist_nn


class MSNLoss(LightlyMSNLoss):
    """lightly's ``MSNLoss`` (CE from sharpened target prototype assignments to anchor assignments, plus
    the mean-entropy-maximisation regulariser), with shapes checked and the regulariser computed on
    the *global* mean anchor probabilities, as the official code (``AllReduce`` of ``mean(probs)``);
    lightly's uses this rank's batch only, a different regulariser under DDP.

    Args:
        temperature: Temperature of the prototype softmax (0.1).
        sinkhorn_iterations: Sinkhorn iterations on the targets (the official configs: 3; 0 disables).
        regularization_weight: Weight of the me-max regulariser (1).
    """

    def __init__(self, temperature: float = 0.1, sinkhorn_iterations: int = 3, regularization_weight: float = 1.0) -> None:
        super().__init__(temperature=temperature, sinkhorn_iterations=sinkhorn_iterations,
                         regularization_weight=regularization_weight, gather_distributed=True)

    def forward(self, anchors: torch.Tensor, targets: torch.Tensor, prototypes: torch.Tensor,
                target_sharpen_temperature: float = 0.25) -> torch.Tensor:
        """Args: anchors ``(V * B, D)`` (view-major), targets ``(B, D)``, prototypes ``(K, D)``."""
        ok = anchors.ndim == targets.ndim == prototypes.ndim == 2 and anchors.shape[1] == targets.shape[1] == prototypes.shape[1]
        if not ok or anchors.shape[0] % max(targets.shape[0], 1) or anchors.shape[0] == 0:
            raise ValueError(f"MSNLoss: expected anchors (V*B, D), targets (B, D), prototypes (K, D), got "
                             f"{tuple(anchors.shape)}, {tuple(targets.shape)}, {tuple(prototypes.shape)}")
        return super().forward(anchors, targets.detach(), prototypes, target_sharpen_temperature)

    def regularization_loss(self, mean_anchor_probs: torch.Tensor) -> torch.Tensor:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            mean_anchor_probs = dist_nn.all_reduce(mean_anchor_probs) / dist.get_world_size()
        return super().regularization_loss(mean_anchor_probs)
