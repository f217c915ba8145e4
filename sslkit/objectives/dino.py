"""DINO: Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers"."""

from __future__ import annotations

from typing import Any

import torch
from lightly.models.modules import DINOProjectionHead
from torch import nn

from sslkit.backbones import create_backbone
from sslkit.losses import DINOLoss
from sslkit.objectives.base import SSLObjective
from sslkit.optim.schedules import linear_warmup_constant
from sslkit.teacher import EMATeacher


class DINO(SSLObjective):
    """Self-distillation: the student matches an EMA teacher's centred, sharpened output across crops.

    The teacher sees the two global crops only; the student sees every crop (``batch["views"]`` is
    ``[global_0, global_1, local_0, ...]``, e.g. from ``MultiCropViews``). Local crops smaller than the
    ViT's ``img_size`` need ``backbone_kwargs: {dynamic_img_size: true}``.

    Args:
        backbone: timm architecture name.
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim: Hidden width of the 3-layer head MLP (2048).
        proj_bottleneck_dim: Bottleneck before the weight-normalised last layer (256).
        proj_output_dim: Output width ``K`` (65536 in the paper).
        proj_batch_norm: BatchNorm in the head MLP (off for ViTs).
        norm_last_layer: Fix the last layer's weight-norm scale to 1 (more stable, as in the paper).
        freeze_last_layer_epochs: Epochs during which the last layer gets no update (1).
        student_temp: Student temperature (0.1).
        teacher_temp: Teacher temperature after warmup (0.04-0.07).
        warmup_teacher_temp: Teacher temperature at step 0 (0.04).
        warmup_teacher_temp_epochs: Length of the linear teacher-temperature warmup, in epochs (30).
        center_momentum: EMA momentum of the centre (0.9).
        ema_momentum: Teacher momentum at step 0 (0.996); cosine-increased to ``ema_momentum_end``.
        ema_momentum_end: Teacher momentum at the last step.
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = "Caron et al., 2021, Emerging Properties in Self-Supervised Vision Transformers, arXiv:2104.14294"

    def __init__(
        self,
        backbone: str = "vit_small_patch16_224",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 2048,
        proj_bottleneck_dim: int = 256,
        proj_output_dim: int = 65536,
        proj_batch_norm: bool = False,
        norm_last_layer: bool = True,
        freeze_last_layer_epochs: int = 1,
        student_temp: float = 0.1,
        teacher_temp: float = 0.07,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: float = 30.0,
        center_momentum: float = 0.9,
        ema_momentum: float = 0.996,
        ema_momentum_end: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        # Built without autograd: weight_norm caches its computed weight as a plain attribute, and a
        # cached non-leaf tensor makes the teacher's deepcopy fail (pytorch/pytorch#103001).
        with torch.no_grad():
            self.projection_head = DINOProjectionHead(
                self.backbone.num_features, proj_hidden_dim, proj_bottleneck_dim, proj_output_dim,
                batch_norm=proj_batch_norm, freeze_last_layer=freeze_last_layer_epochs,
                norm_last_layer=norm_last_layer,
            )
        self.teacher = EMATeacher(self, ["backbone", "projection_head"], ema_momentum, ema_momentum_end)
        self.criterion = DINOLoss(proj_output_dim, teacher_temp=teacher_temp, student_temp=student_temp,
                                  center_momentum=center_momentum)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self.backbone, "projection_head": self.projection_head}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def teacher_temperature(self, step: int) -> float:
        """Linear warmup from ``warmup_teacher_temp`` to ``teacher_temp``, constant afterwards."""
        warmup_steps = int(round(self.hparams.warmup_teacher_temp_epochs * self.steps_per_epoch()))
        return linear_warmup_constant(step, warmup_steps, self.hparams.warmup_teacher_temp, self.hparams.teacher_temp)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        views = batch["views"]
        global_views, local_views = torch.cat(views[:2]), views[2:]  # (2B, C, H, W); N x (B, C, h, w)
        m = self.teacher.update(self.global_step, self.total_steps())
        with torch.no_grad():
            teacher_out = self.teacher_projection_head(self.teacher_backbone(global_views)).chunk(2)  # 2 x (B, K)
        student_out = list(self.projection_head(self.backbone(global_views)).chunk(2))
        if local_views:  # one pass over all local crops: they share a size
            student_out += self.projection_head(self.backbone(torch.cat(local_views))).chunk(len(local_views))
        t_temp = self.teacher_temperature(self.global_step)
        loss = self.criterion(list(teacher_out), student_out, teacher_temp=t_temp)
        self.log("train/loss", loss, prog_bar=True, batch_size=views[0].shape[0])
        self.log("train/ema_momentum", m, batch_size=views[0].shape[0])
        self.log("train/teacher_temp", t_temp, batch_size=views[0].shape[0])
        return loss

    def on_after_backward(self) -> None:
        # DINO keeps the output layer fixed during the first epoch(s): it stabilises early training.
        self.projection_head.cancel_last_layer_gradients(self.current_epoch)
