"""VICReg: Bardes, Ponce, LeCun, 2022, "VICReg: Variance-Invariance-Covariance Regularization"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.loss import VICRegLoss
from lightly.models.modules.heads import VICRegProjectionHead

from sslkit.backbones import create_backbone
from sslkit.losses.precision import fp32
from sslkit.objectives.base import SSLObjective


class VICReg(SSLObjective):
    """Two views, one shared encoder + expander; invariance, variance and covariance terms.

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of the expander (8192 in the paper).
        proj_output_dim: Output width of the expander (8192 in the paper).
        proj_num_layers: Linear layers in the expander (3 in the paper).
        sim_coeff: Weight of the invariance (MSE) term, ``lambda`` (25).
        std_coeff: Weight of the variance hinge, ``mu`` (25).
        cov_coeff: Weight of the covariance term, ``nu`` (1).
        gather_distributed: Variance and covariance over the global batch (lightly's gather).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = (
        "Bardes, Ponce, LeCun, 2022, VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning, "
        "arXiv:2105.04906"
    )

    def __init__(
        self,
        backbone: str = "resnet18_cifar",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 8192,
        proj_output_dim: int = 8192,
        proj_num_layers: int = 3,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        gather_distributed: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = VICRegProjectionHead(
            self.backbone.num_features, proj_hidden_dim, proj_output_dim, num_layers=proj_num_layers
        )
        self.criterion = VICRegLoss(
            lambda_param=sim_coeff, mu_param=std_coeff, nu_param=cov_coeff, gather_distributed=gather_distributed
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x_a, x_b = batch["views"][:2]
        # One pass per view, as the official code: BatchNorm statistics stay per view.
        z_a, z_b = [self.projection_head(self.backbone(x)) for x in (x_a, x_b)]  # (B, P)
        loss = fp32(self.criterion)(z_a, z_b)  # variance/covariance terms: fp32 under autocast
        self.log("train/loss", loss, prog_bar=True, batch_size=x_a.shape[0])
        return loss
