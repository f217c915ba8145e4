"""The rotation-prediction head of E-SSL (Dangovski et al., 2022, "Equivariant Self-Supervised Learning")."""

from __future__ import annotations

from torch import Tensor, nn


class RotationPredictionHead(nn.Module):
    """MLP on pooled backbone features → logits over the four rotations.

    The authors' CIFAR predictor (rdangovs/essl ``cifar10/main.py``): two hidden layers with
    LayerNorm and ReLU, then a linear layer to ``num_classes``.

    Args:
        in_dim: Backbone feature width.
        hidden_dim: Hidden width (authors: 2048).
        num_classes: Rotations to tell apart (4).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, num_classes: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, num_classes),
        )

    def forward(self, feats: Tensor) -> Tensor:
        return self.net(feats)  # (B, num_classes)
