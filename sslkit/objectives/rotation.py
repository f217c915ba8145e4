"""E-SSL's four-fold rotation prediction (Dangovski et al., 2022, "Equivariant Self-Supervised
Learning") as an auxiliary loss that any objective with an ``aux_loss`` hook can add."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from sslkit.heads.rotation import RotationPredictionHead
from sslkit.losses.rotation import rotation_prediction_loss
from sslkit.transforms.rotation import four_fold_rotations


class FourFoldRotation(nn.Module):
    """Predict which of four rotations an extra view received, from the shared backbone's features.

    Every image of ``views[view]`` goes through the backbone at all four rotations (the authors'
    ``rotate_images``), so each step sees balanced labels. E-SSL uses a separate, smaller crop for
    this view (16 px at CIFAR's 32 px), which keeps the extra cost near one view.

    Args:
        in_dim: Backbone feature width (filled in by the host objective).
        hidden_dim: Hidden width of the prediction MLP (authors: 2048).
        view: Index into ``batch["views"]`` of the view to rotate (default: the last one).
    """

    paper = (
        "Dangovski et al., 2022, Equivariant Self-Supervised Learning: Encouraging Equivariance in Representations, "
        "arXiv:2111.00899"
    )

    def __init__(self, in_dim: int, hidden_dim: int = 2048, view: int = -1) -> None:
        super().__init__()
        self.head = RotationPredictionHead(in_dim, hidden_dim)
        self.view = view

    def forward(self, backbone: nn.Module, batch: dict[str, Any]) -> Tensor:
        x_rot, labels = four_fold_rotations(batch["views"][self.view])  # (4B, C, H, H), (4B,)
        return rotation_prediction_loss(self.head(backbone(x_rot)), labels)

