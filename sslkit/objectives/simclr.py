"""SimCLR: Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual Representations"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead

from sslkit.backbones import create_backbone
from sslkit.losses.precision import fp32
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.registry import build_aux_loss


class SimCLR(SSLObjective):
    """Two views, one shared encoder + MLP head, NT-Xent over the global batch.

    Args:
        backbone: timm architecture name (or sslkit's, e.g. ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone`` (``img_size``, ``patch_size``...).
        proj_hidden_dim: Hidden width of the projection MLP.
        proj_output_dim: Output width of the projection MLP (the loss space).
        proj_num_layers: Linear layers in the projection MLP (2 in SimCLR v1, 3 in v2).
        temperature: NT-Xent temperature (0.5 for CIFAR in the paper, 0.1-0.2 on ImageNet).
        gather_distributed: Gather negatives from all ranks with gradients (lightly's gather).
        aux_loss: Optional auxiliary loss ``{"class_path": ..., "init_args": {...}}``, e.g. E-SSL's
            ``sslkit.objectives.rotation.FourFoldRotation`` (see ``build_aux_loss``); off by default.
        aux_weight: Weight of the auxiliary loss (E-SSL: 0.4 for SimCLR).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = "Chen et al., 2020, A Simple Framework for Contrastive Learning of Visual Representations, arXiv:2002.05709"

    def __init__(
        self,
        backbone: str = "resnet18_cifar",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 128,
        proj_num_layers: int = 2,
        temperature: float = 0.5,
        gather_distributed: bool = True,
        aux_loss: dict[str, Any] | None = None,
        aux_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = SimCLRProjectionHead(
            self.backbone.num_features, proj_hidden_dim, proj_output_dim, num_layers=proj_num_layers
        )
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)
        self.aux_loss = build_aux_loss(aux_loss, self.backbone.num_features)
        self.aux_weight = aux_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x_a, x_b = batch["views"][:2]
        # One backbone pass over both views; the head per view, so its BatchNorm normalises each view's
        # batch as lightly's and solo-learn's SimCLR do (one BN over both views trained ~1 kNN point
        # worse at equal steps: docs/benchmarks.md, "Accuracy at equal budget").
        h_a, h_b = self.backbone(torch.cat([x_a, x_b])).chunk(2)
        z_a, z_b = self.projection_head(h_a), self.projection_head(h_b)
        loss = fp32(self.criterion)(z_a, z_b)  # NT-Xent logits / temperature: fp32 under autocast
        if self.aux_loss is not None:
            aux = self.aux_loss(self.backbone, batch)
            self.log("train/aux_loss", aux, batch_size=x_a.shape[0])
            loss = loss + self.aux_weight * aux
        self.log("train/loss", loss, prog_bar=True, batch_size=x_a.shape[0])
        return loss
