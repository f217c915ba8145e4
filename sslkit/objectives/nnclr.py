"""NNCLR: Dwibedi et al., 2021, "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import NNCLRPredictionHead, NNCLRProjectionHead
from torch import nn

from sslkit.backbones import create_backbone
from sslkit.losses import FeatureQueue, nearest_neighbours
from sslkit.losses.precision import fp32
from sslkit.objectives.base import SSLObjective


class NNCLR(SSLObjective):
    """SimCLR whose positive is the nearest neighbour of a view's projection in a support set of past batches.

    The support set is a :class:`sslkit.losses.FeatureQueue` of the first view's projections, gathered
    from every rank (the same set on all ranks) and checkpointed. Before the queue holds anything the
    batch itself is the support set (a SimCLR step).

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of the 3-layer projector (2048).
        proj_output_dim: Projection width (256).
        pred_hidden_dim: Hidden width of the predictor (4096).
        support_set_size: Projections kept in the support set (98304 on ImageNet in the paper).
        temperature: NT-Xent temperature (0.1).
        gather_distributed: Gather negatives from all ranks (lightly's gather).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = (
        "Dwibedi et al., 2021, With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning of "
        "Visual Representations, arXiv:2104.14548"
    )

    def __init__(
        self,
        backbone: str = "resnet18_cifar",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 256,
        pred_hidden_dim: int = 4096,
        support_set_size: int = 98304,
        temperature: float = 0.1,
        gather_distributed: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = NNCLRProjectionHead(self.backbone.num_features, proj_hidden_dim, proj_output_dim)
        self.prediction_head = NNCLRPredictionHead(proj_output_dim, pred_hidden_dim, proj_output_dim)
        self.support_set = FeatureQueue(support_set_size, proj_output_dim, gather_distributed=gather_distributed)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "projection_head": self.projection_head,
                "prediction_head": self.prediction_head}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x_a, x_b = batch["views"][:2]
        z_a, z_b = [self.projection_head(self.backbone(x)) for x in (x_a, x_b)]  # (B, P), BatchNorm per view
        p_a, p_b = self.prediction_head(z_a), self.prediction_head(z_b)  # (B, P)
        support = self.support_set.features() if int(self.support_set.num_filled) else z_a.detach()
        nn_a, nn_b = nearest_neighbours(z_a, support), nearest_neighbours(z_b, support)  # (B, P), constants
        loss = 0.5 * (fp32(self.criterion)(nn_a, p_b) + fp32(self.criterion)(nn_b, p_a))  # the paper's Eq. 4, symmetrised
        self.support_set.enqueue(z_a.detach())
        self.log("train/loss", loss, prog_bar=True, batch_size=x_a.shape[0])
        self.log("train/support_set_filled", self.support_set.num_filled.float(), batch_size=x_a.shape[0])
        return loss
