"""MSN: Assran et al., 2022, "Masked Siamese Networks for Label-Efficient Learning"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.models.modules.heads import MSNProjectionHead
from torch import Tensor, nn

from sslkit.backbones import create_backbone
from sslkit.losses import MSNLoss
from sslkit.losses.precision import fp32
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.multicrop import encode_by_resolution
from sslkit.teacher import EMATeacher


class MSN(SSLObjective):
    """Masked anchor views match the EMA target view's sharpened assignment to learned prototypes.

    ``batch["views"]`` is ``[target, anchor, focal_0, ...]`` (``MultiCropViews``: two global crops, then
    the small focal crops; ``dynamic_img_size`` for them); ``batch["masks_context"]`` ``(B, K)`` holds the
    anchor's kept patches (:class:`sslkit.masking.RandomMaskCollator`, MSN's random masking), so the
    student encodes only those. The EMA teacher encodes the unmasked target view; the prototypes are
    shared and trained through the anchors only.

    Args:
        backbone: A ViT name (sslkit's ``VisionTransformer``: the encoder keeps tokens).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of the 3-layer projector (2048).
        proj_output_dim: Projection width (256).
        num_prototypes: Number of prototypes (1024).
        temperature: Prototype softmax temperature (0.1).
        target_sharpen_temp: Target sharpening temperature (0.25).
        sinkhorn_iterations: Sinkhorn iterations on the targets (3; 0 disables).
        me_max_weight: Weight of the mean-entropy maximisation regulariser (1).
        ema_momentum / ema_momentum_end: Teacher momentum at the first and last step (0.996 -> 1).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = "Assran et al., 2022, Masked Siamese Networks for Label-Efficient Learning, arXiv:2204.07141"

    def __init__(
        self,
        backbone: str = "vit_small_patch16_224",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 256,
        num_prototypes: int = 1024,
        temperature: float = 0.1,
        target_sharpen_temp: float = 0.25,
        sinkhorn_iterations: int = 3,
        me_max_weight: float = 1.0,
        ema_momentum: float = 0.996,
        ema_momentum_end: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        if not hasattr(self.backbone, "patch_embed"):
            raise TypeError(f"MSN needs a ViT backbone, got {backbone}")
        self.projection_head = MSNProjectionHead(self.backbone.num_features, proj_hidden_dim, proj_output_dim)
        self.prototypes = nn.Linear(proj_output_dim, num_prototypes, bias=False)
        self.teacher = EMATeacher(self, ["backbone", "projection_head"], ema_momentum, ema_momentum_end)
        self.criterion = MSNLoss(temperature, sinkhorn_iterations, me_max_weight)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "projection_head": self.projection_head, "prototypes": self.prototypes}

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        views, keep = batch["views"], batch["masks_context"]  # keep: (B, K) kept patches of the anchor view
        m = self.teacher.update(self.global_step, self.total_steps())
        with torch.no_grad():
            targets = self.teacher_projection_head(self.teacher_backbone(views[0]))  # (B, P)
        tokens = self.backbone.forward_features(views[1], keep=keep)  # (B, prefix + K, D): kept tokens only
        anchors = [self.projection_head(self.backbone.forward_head(tokens, pre_logits=True))]
        anchors += encode_by_resolution(lambda x: self.projection_head(self.backbone(x)), views[2:])  # focal views
        loss = fp32(self.criterion)(torch.cat(anchors), targets, self.prototypes.weight, self.hparams.target_sharpen_temp)
        self.log("train/loss", loss, prog_bar=True, batch_size=views[0].shape[0])
        self.log("train/ema_momentum", m, batch_size=views[0].shape[0])
        return loss
