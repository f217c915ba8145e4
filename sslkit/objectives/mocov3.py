"""MoCo v3: Chen, Xie, He, 2021, "An Empirical Study of Training Self-Supervised Vision Transformers"."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sslkit.backbones import create_backbone
from sslkit.heads import mocov3_mlp
from sslkit.losses import mocov3_loss
from sslkit.objectives.base import SSLObjective
from sslkit.teacher import EMATeacher


class MoCoV3(SSLObjective):
    """Student backbone + projector + predictor; EMA teacher backbone + projector; symmetric InfoNCE.

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_num_layers: Projector depth: 3 for ViT, 2 for ResNet (official code).
        proj_hidden_dim: Hidden width of projector and predictor (4096 in the paper).
        proj_output_dim: Output width of projector and predictor (256 in the paper).
        pred_last_bn: Affine-free BatchNorm at the predictor's output (ViT yes, ResNet no).
        temperature: InfoNCE temperature (0.2 for ViT, 1.0 for ResNet in the paper).
        ema_momentum: Teacher momentum at step 0; cosine-increased to ``ema_momentum_end``.
        ema_momentum_end: Teacher momentum at the last step.
        gather_distributed: Contrast against the keys of all ranks.
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = "Chen, Xie, He, 2021, An Empirical Study of Training Self-Supervised Vision Transformers, arXiv:2104.02057"

    def __init__(
        self,
        backbone: str = "vit_small_patch16_224",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_num_layers: int = 3,
        proj_hidden_dim: int = 4096,
        proj_output_dim: int = 256,
        pred_last_bn: bool = True,
        temperature: float = 0.2,
        ema_momentum: float = 0.99,
        ema_momentum_end: float = 1.0,
        gather_distributed: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = mocov3_mlp(proj_num_layers, self.backbone.num_features, proj_hidden_dim, proj_output_dim)
        self.prediction_head = mocov3_mlp(2, proj_output_dim, proj_hidden_dim, proj_output_dim, last_bn=pred_last_bn)
        self.teacher = EMATeacher(self, ["backbone", "projection_head"], ema_momentum, ema_momentum_end)
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "projection_head": self.projection_head,
                "prediction_head": self.prediction_head}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x_a, x_b = batch["views"][:2]
        m = self.teacher.update(self.global_step, self.total_steps())
        # One pass per view, as the official code: BatchNorm statistics stay per view.
        with torch.no_grad():
            k_a, k_b = [self.teacher_projection_head(self.teacher_backbone(x)) for x in (x_a, x_b)]  # (B, P)
        p_a, p_b = [self.prediction_head(self.projection_head(self.backbone(x))) for x in (x_a, x_b)]  # (B, P)
        loss = (mocov3_loss(p_a, k_b, self.temperature, self.gather_distributed)
                + mocov3_loss(p_b, k_a, self.temperature, self.gather_distributed))
        self.log("train/loss", loss, prog_bar=True, batch_size=x_a.shape[0])
        self.log("train/ema_momentum", m, batch_size=x_a.shape[0])
        return loss
