"""MoCo v3 MLPs exactly as the official ``moco/builder.py`` ``_build_mlp`` builds them.

lightly's ``MoCoProjectionHead(batch_norm=True)`` is close but gives the last BatchNorm an affine
transform (the official code removes it) and cannot drop the last BatchNorm (the ResNet predictor
has none), so the MLP is assembled from lightly's generic ``ProjectionHead`` blocks.
"""

from __future__ import annotations

from lightly.models.modules.heads import ProjectionHead
from torch import nn


def mocov3_mlp(
    num_layers: int, input_dim: int, hidden_dim: int, output_dim: int, last_bn: bool = True
) -> ProjectionHead:
    """``num_layers`` bias-free linears; BN + ReLU between them; optional affine-free BN at the end.

    Paper setup: projector ``num_layers=3`` (ViT) or 2 (ResNet); predictor 2 layers, ``last_bn``
    only for ViT. Hidden 4096, output 256.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    blocks = []
    for i in range(num_layers):
        d_in = input_dim if i == 0 else hidden_dim
        if i < num_layers - 1:
            blocks.append((d_in, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(), False))
        else:
            bn = nn.BatchNorm1d(output_dim, affine=False) if last_bn else None
            blocks.append((d_in, output_dim, bn, None, False))
    return ProjectionHead(blocks)
