"""SwAV: Caron et al., 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments"."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes
from torch import nn

from sslkit.backbones import create_backbone
from sslkit.losses import FeatureQueue, SwAVLoss
from sslkit.losses.precision import fp32
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.multicrop import encode_by_resolution


class SwAV(SSLObjective):
    """Multi-crop swapped prediction: each crop predicts the Sinkhorn codes of the global crops over prototypes.

    ``batch["views"]`` is ``[global_0, global_1, local_0, ...]`` (``MultiCropViews``); crops of one size
    share a backbone pass. With ``queue_size > 0`` each global crop keeps a :class:`FeatureQueue` of its
    past projections (gathered from every rank), whose prototype scores join Sinkhorn once the queue
    is full and the epoch reaches ``queue_start_epoch`` (the paper's small-batch setting, Sec. 4.3).

    Args:
        backbone: timm architecture name (or ``resnet18_cifar``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of the projection MLP (2048).
        proj_output_dim: Projection width (128).
        num_prototypes: Number of prototypes ``K`` (3000 on ImageNet).
        temperature: Softmax temperature of the predictions (0.1).
        sinkhorn_epsilon: Entropic regularisation of the codes (0.05).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (3).
        queue_size: Projections kept per global crop (3840 in the paper's batch-256 runs; 0 disables).
        queue_start_epoch: First epoch whose Sinkhorn uses the queue (15 in the paper).
        freeze_prototypes_steps: Steps during which the prototypes get no update (313: the first epoch).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = (
        "Caron et al., 2020, Unsupervised Learning of Visual Features by Contrasting Cluster Assignments, "
        "arXiv:2006.09882"
    )

    def __init__(
        self,
        backbone: str = "resnet18_cifar",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 128,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        sinkhorn_epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        queue_size: int = 0,
        queue_start_epoch: int = 15,
        freeze_prototypes_steps: int = 313,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        self.projection_head = SwaVProjectionHead(self.backbone.num_features, proj_hidden_dim, proj_output_dim)
        self.prototypes = SwaVPrototypes(proj_output_dim, num_prototypes)
        self.queues = nn.ModuleList(FeatureQueue(queue_size, proj_output_dim) for _ in range(2 if queue_size else 0))
        self.criterion = SwAVLoss(temperature, sinkhorn_iterations, sinkhorn_epsilon)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "projection_head": self.projection_head, "prototypes": self.prototypes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        views = batch["views"]
        self.prototypes.normalize()  # prototypes live on the unit sphere (the paper's Sec. 3.1)
        z = encode_by_resolution(lambda x: F.normalize(self.projection_head(self.backbone(x)), dim=1), views)  # (B, P) each
        scores = [self.prototypes(z_v) for z_v in z]  # (B, K) each
        queue_scores = None
        if self.queues and self.current_epoch >= self.hparams.queue_start_epoch and all(q.is_full() for q in self.queues):
            with torch.no_grad():
                queue_scores = [self.prototypes(q.features().to(z[0].dtype)) for q in self.queues]  # (Q, K) each
        loss = fp32(self.criterion)(scores[:2], scores[2:], queue_scores)
        for queue, z_v in zip(self.queues, z[:2]):
            queue.enqueue(z_v.detach())
        self.log("train/loss", loss, prog_bar=True, batch_size=views[0].shape[0])
        self.log("train/queue_in_use", float(queue_scores is not None), batch_size=views[0].shape[0])
        return loss

    def on_after_backward(self) -> None:
        # The official code cancels the prototypes' gradients during the first iterations (stability).
        if self.global_step < self.hparams.freeze_prototypes_steps:
            for p in self.prototypes.parameters():
                p.grad = None
