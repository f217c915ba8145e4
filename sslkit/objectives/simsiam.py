"""SimSiam: Chen & He, 2021, "Exploring Simple Siamese Representation Learning"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead
from torch import nn

from sslkit.backbones import create_backbone
from sslkit.losses import simsiam_loss
from sslkit.objectives.base import SSLObjective


class SimSiam(SSLObjective):
    """Two views, one encoder + projector; a predictor regresses the other view's stop-gradient projection.

    No teacher, no negatives: the stop-gradient (inside :func:`sslkit.losses.simsiam_loss`) and the
    predictor prevent collapse (the paper's Sec. 4).

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of the projector (2048).
        proj_output_dim: Output width of projector and predictor (2048).
        pred_hidden_dim: Bottleneck width of the predictor (512: the paper's Sec. 4.4 bottleneck).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = "Chen & He, 2021, Exploring Simple Siamese Representation Learning, arXiv:2011.10566"

    def __init__(
        self,
        backbone: str = "resnet18_cifar",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 2048,
        pred_hidden_dim: int = 512,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = SimSiamProjectionHead(self.backbone.num_features, proj_hidden_dim, proj_output_dim)
        self.prediction_head = SimSiamPredictionHead(proj_output_dim, pred_hidden_dim, proj_output_dim)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "projection_head": self.projection_head,
                "prediction_head": self.prediction_head}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x_a, x_b = batch["views"][:2]
        # One pass per view, as the official code: BatchNorm statistics stay per view.
        z_a, z_b = [self.projection_head(self.backbone(x)) for x in (x_a, x_b)]  # (B, P)
        p_a, p_b = self.prediction_head(z_a), self.prediction_head(z_b)  # (B, P)
        loss = 0.5 * simsiam_loss(p_a, z_b) + 0.5 * simsiam_loss(p_b, z_a)  # the paper's Eq. 2
        self.log("train/loss", loss, prog_bar=True, batch_size=x_a.shape[0])
        self.log("train/z_std", torch.nn.functional.normalize(z_a.detach(), dim=1).std(dim=0).mean(),
                 batch_size=x_a.shape[0])  # ~1/sqrt(P) when healthy, 0 when collapsed (the paper's Fig. 2)
        return loss
