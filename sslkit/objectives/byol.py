"""BYOL: Grill et al., 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from torch import nn

from sslkit.backbones import create_backbone
from sslkit.losses import byol_loss
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.registry import build_aux_loss
from sslkit.teacher import EMATeacher


class BYOL(SSLObjective):
    """Online backbone + projector + predictor regress an EMA target's projection of the other view.

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of projector and predictor (4096 in the paper).
        proj_output_dim: Output width of projector and predictor (256 in the paper).
        ema_momentum: Target momentum at step 0 (0.996 on ImageNet, 0.99 on CIFAR); cosine-increased.
        ema_momentum_end: Target momentum at the last step.
        aux_loss: Optional auxiliary loss on the online backbone (see ``SimCLR``); off by default.
        aux_weight: Weight of the auxiliary loss.
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = (
        "Grill et al., 2020, Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning, "
        "arXiv:2006.07733"
    )

    def __init__(
        self,
        backbone: str = "resnet18_cifar",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 4096,
        proj_output_dim: int = 256,
        ema_momentum: float = 0.996,
        ema_momentum_end: float = 1.0,
        aux_loss: dict[str, Any] | None = None,
        aux_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = BYOLProjectionHead(self.backbone.num_features, proj_hidden_dim, proj_output_dim)
        self.prediction_head = BYOLPredictionHead(proj_output_dim, proj_hidden_dim, proj_output_dim)
        self.teacher = EMATeacher(self, ["backbone", "projection_head"], ema_momentum, ema_momentum_end)
        self.aux_loss = build_aux_loss(aux_loss, self.backbone.num_features)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "projection_head": self.projection_head,
                "prediction_head": self.prediction_head, **({"aux_loss": self.aux_loss} if self.aux_loss is not None else {})}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x_a, x_b = batch["views"][:2]
        m = self.teacher.update(self.global_step, self.total_steps())
        # One pass per view, as the official code: BatchNorm statistics stay per view.
        with torch.no_grad():
            z_a, z_b = [self.teacher_projection_head(self.teacher_backbone(x)) for x in (x_a, x_b)]  # (B, P)
        p_a, p_b = [self.prediction_head(self.projection_head(self.backbone(x))) for x in (x_a, x_b)]  # (B, P)
        loss = byol_loss(p_a, z_b) + byol_loss(p_b, z_a)  # symmetrised, as the paper's L + L~
        if self.aux_loss is not None:
            aux = self.aux_loss(self.backbone, batch)
            self.log("train/aux_loss", aux, batch_size=x_a.shape[0])
            loss = loss + self.hparams.aux_weight * aux
        self.log("train/loss", loss, prog_bar=True, batch_size=x_a.shape[0])
        self.log("train/ema_momentum", m, batch_size=x_a.shape[0])
        return loss
