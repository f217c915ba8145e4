"""TiCo: Zhu et al., 2022, "TiCo: Transformation Invariance and Covariance Contrast for Self-Supervised
Visual Representation Learning"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.models.modules.heads import TiCoProjectionHead
from torch import nn

from sslkit.backbones import create_backbone
from sslkit.losses import TiCoLoss
from sslkit.objectives.base import SSLObjective
from sslkit.teacher import EMATeacher


class TiCo(SSLObjective):
    """Student projection of view a against an EMA teacher's projection of view b (lightly's example).

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of the projector (4096 in the paper).
        proj_output_dim: Output width of the projector and size of the covariance (256 in the paper).
        beta: EMA coefficient of the running covariance (0.9).
        rho: Weight of the covariance-contrast term (8.0).
        ema_momentum: Teacher momentum at step 0 (0.996 in lightly's example); cosine-increased.
        ema_momentum_end: Teacher momentum at the last step.
        gather_distributed: Covariance and loss over the global batch (lightly's gather).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = (
        "Zhu et al., 2022, TiCo: Transformation Invariance and Covariance Contrast for Self-Supervised Visual Representation Learning, "
        "arXiv:2206.10698"
    )

    def __init__(
        self,
        backbone: str = "resnet18_cifar",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 4096,
        proj_output_dim: int = 256,
        beta: float = 0.9,
        rho: float = 8.0,
        ema_momentum: float = 0.996,
        ema_momentum_end: float = 1.0,
        gather_distributed: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = TiCoProjectionHead(self.backbone.num_features, proj_hidden_dim, proj_output_dim)
        self.teacher = EMATeacher(self, ["backbone", "projection_head"], ema_momentum, ema_momentum_end)
        self.criterion = TiCoLoss(proj_output_dim, beta=beta, rho=rho, gather_distributed=gather_distributed)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "projection_head": self.projection_head}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x_a, x_b = batch["views"][:2]
        m = self.teacher.update(self.global_step, self.total_steps())
        with torch.no_grad():
            z_b = self.teacher_projection_head(self.teacher_backbone(x_b))  # (B, P)
        z_a = self.projection_head(self.backbone(x_a))  # (B, P)
        loss = self.criterion(z_a, z_b)  # also advances the running covariance (a buffer)
        self.log("train/loss", loss, prog_bar=True, batch_size=x_a.shape[0])
        self.log("train/ema_momentum", m, batch_size=x_a.shape[0])
        return loss
