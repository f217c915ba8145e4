"""CARE: Gupta et al., 2023, "Structuring Representation Geometry with Rotationally Equivariant
Contrastive Learning" (Contrastive Augmentation-induced Rotational Equivariance)."""

from __future__ import annotations

from typing import Any

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead

from sslkit.backbones import create_backbone
from sslkit.losses.care import orthogonal_equivariance_loss
from sslkit.losses.precision import fp32
from sslkit.objectives.base import SSLObjective


class CARE(SSLObjective):
    """InfoNCE between two views plus ``equivariance_weight`` x CARE's orthogonal-equivariance loss.

    Reads ``views[0]``, ``views[1]`` (independently augmented, the invariance term) and
    ``views_shared`` / ``shared_group_size`` from :class:`sslkit.transforms.SharedAugmentCollator`
    (groups of images that received the same augmentation, the equivariance term).

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: ``create_backbone`` kwargs.
        proj_hidden_dim: Hidden width of the projection MLP (authors' CIFAR code: 512).
        proj_output_dim: Embedding width (authors: 128).
        temperature: InfoNCE temperature (authors: 0.5).
        equivariance_weight: ``lambda`` of ``L_InfoNCE + lambda L_equi`` (authors: 0.01-0.03 on CIFAR).
        gather_distributed: Gather InfoNCE negatives from all ranks (the equivariance groups are local).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = (
        "Gupta et al., 2023, Structuring Representation Geometry with Rotationally Equivariant Contrastive Learning, "
        "arXiv:2306.13924"
    )

    def __init__(
        self,
        backbone: str = "resnet18_cifar",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 512,
        proj_output_dim: int = 128,
        temperature: float = 0.5,
        equivariance_weight: float = 0.01,
        gather_distributed: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = SimCLRProjectionHead(self.backbone.num_features, proj_hidden_dim, proj_output_dim)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)
        self.equivariance_weight = equivariance_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x_a, x_b = batch["views"][:2]
        s_1, s_2 = batch["views_shared"]
        z = self.projection_head(self.backbone(torch.cat([x_a, x_b, s_1, s_2])))  # one pass, all four
        z_a, z_b, z_1, z_2 = z.split([len(x_a), len(x_b), len(s_1), len(s_2)])
        invariance = fp32(self.criterion)(z_a, z_b)  # NT-Xent logits / temperature: fp32 under autocast
        equivariance = orthogonal_equivariance_loss(z_1, z_2, int(batch["shared_group_size"]))
        loss = invariance + self.equivariance_weight * equivariance

        B = x_a.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        self.log("train/invariance_loss", invariance, batch_size=B)
        self.log("train/equivariance_loss", equivariance, batch_size=B)
        return loss
