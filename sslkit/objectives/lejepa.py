"""LeJEPA: Balestriero & LeCun, 2025, "LeJEPA: Provable and Scalable Self-Supervised Learning Without the Heuristics"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.loss import LeJEPALoss
from lightly.models.modules import LeJEPAProjectionHead
from torch import nn

from sslkit.backbones import create_backbone
from sslkit.losses.precision import fp32
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.multicrop import encode_by_resolution


class LeJEPA(SSLObjective):
    """Every view's projection predicts the mean projection of the global views; SIGReg keeps them Gaussian.

    No teacher, no stop-gradient, no predictor: the loss is ``lambda * SIGReg(all views) + (1 - lambda) *
    invariance`` (lightly's ``LeJEPALoss``; SIGReg over the global batch). ``batch["views"]`` is
    ``[global_0, ..., global_{G-1}, local_0, ...]`` (``MultiCropViews``, ``G = num_global_views``); crops of
    one size share a backbone pass. At least one local view is needed.

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of the BatchNorm MLP projector (2048).
        proj_output_dim: Projection width (the authors' minimal example: 16-128).
        proj_num_layers: Linear layers of the projector (3).
        num_global_views: Leading views whose mean is the invariance target (2).
        lambda_param: Weight of SIGReg (0.05; the paper explores 0.01-0.1).
        sigreg_num_vectors: Random slices per step (lightly's default 1024; the minimal example 256).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = (
        "Balestriero & LeCun, 2025, LeJEPA: Provable and Scalable Self-Supervised Learning Without the Heuristics, "
        "arXiv:2511.08544"
    )

    def __init__(
        self,
        backbone: str = "vit_small_patch16_224",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 128,
        proj_num_layers: int = 3,
        num_global_views: int = 2,
        lambda_param: float = 0.05,
        sigreg_num_vectors: int = 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = LeJEPAProjectionHead(self.backbone.num_features, proj_hidden_dim, proj_output_dim,
                                                    num_layers=proj_num_layers)
        self.criterion = LeJEPALoss(lambda_param=lambda_param, gather_distributed=True,
                                    sigreg_num_vectors=sigreg_num_vectors)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "projection_head": self.projection_head}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        views, g = batch["views"], self.hparams.num_global_views
        if len(views) <= g:
            raise ValueError(f"LeJEPA needs {g} global views and at least one local view, got {len(views)} views")
        z = torch.stack(encode_by_resolution(lambda x: self.projection_head(self.backbone(x)), views))  # (V, B, P)
        loss = fp32(self.criterion)(local_proj=z[g:], global_proj=z[:g])
        self.log("train/loss", loss, prog_bar=True, batch_size=views[0].shape[0])
        return loss
