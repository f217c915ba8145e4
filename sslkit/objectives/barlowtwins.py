"""Barlow Twins: Zbontar et al., 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.models.modules import BarlowTwinsProjectionHead

from sslkit.backbones import create_backbone
from sslkit.losses import barlow_twins_loss
from sslkit.objectives.base import SSLObjective


class BarlowTwins(SSLObjective):
    """Two views, one shared encoder + projector; the cross-correlation matrix is pushed to identity.

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of the 3-layer projector (8192 in the paper).
        proj_output_dim: Output width of the projector (8192 in the paper).
        lambda_param: Weight of the redundancy-reduction term (5e-3 in the paper).
        gather_distributed: Cross-correlation over the global batch (gathered with gradients).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = "Zbontar et al., 2021, Barlow Twins: Self-Supervised Learning via Redundancy Reduction, arXiv:2103.03230"

    def __init__(
        self,
        backbone: str = "resnet18_cifar",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 8192,
        proj_output_dim: int = 8192,
        lambda_param: float = 5e-3,
        gather_distributed: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = BarlowTwinsProjectionHead(self.backbone.num_features, proj_hidden_dim, proj_output_dim)
        self.lambda_param = lambda_param
        self.gather_distributed = gather_distributed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x_a, x_b = batch["views"][:2]
        # One pass per view, as the official code: BatchNorm statistics stay per view.
        z_a, z_b = [self.projection_head(self.backbone(x)) for x in (x_a, x_b)]  # (B, P)
        loss = barlow_twins_loss(z_a, z_b, self.lambda_param, self.gather_distributed)
        self.log("train/loss", loss, prog_bar=True, batch_size=x_a.shape[0])
        return loss
