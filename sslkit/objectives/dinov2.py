"""DINOv2: Oquab et al., 2023, "DINOv2: Learning Robust Visual Features without Supervision" (and iBOT,
Zhou et al., 2022, "iBOT: Image BERT Pre-Training with Online Tokenizer", as its special case)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightly.loss import KoLeoLoss
from lightly.models.modules import DINOProjectionHead
from torch import Tensor, nn

from sslkit.backbones import create_backbone
from sslkit.backbones.mask_tokens import encode_with_mask_tokens
from sslkit.losses import TeacherCentering, dino_image_loss, gram_anchoring_loss, ibot_patch_loss
from sslkit.losses.precision import fp32
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.multicrop import encode_by_resolution
from sslkit.optim.layer_decay import layer_decay_groups
from sslkit.optim.schedules import linear_warmup_constant
from sslkit.teacher import EMATeacher, make_teacher


class DINOv2(SSLObjective):
    """DINO's image-level self-distillation + iBOT's masked-patch distillation (+ KoLeo, Gram anchoring).

    The student sees the global crops with block-masked patches replaced by a learned mask token and
    the local crops unmasked; the EMA teacher sees the global crops unmasked. ``batch["views"]`` is
    ``[global_0, global_1, local_0, ...]`` (``MultiCropViews``, ``backbone_kwargs: {dynamic_img_size:
    true}`` for smaller local crops) and ``batch["masks_ibot"]`` ``(2B, N)`` comes from
    :class:`sslkit.masking.IBOTMaskCollator`. Register tokens: ``backbone_kwargs: {reg_tokens: 4}``.

    Args:
        backbone: A ViT name (sslkit's ``VisionTransformer``).
        backbone_kwargs: Keyword arguments for ``create_backbone``.
        proj_hidden_dim / proj_bottleneck_dim / proj_output_dim: DINO head widths (2048 / 256 / 65536).
        norm_last_layer: Fix the head's last-layer weight-norm scale (DINOv2 learns it: ``False``).
        freeze_last_layer_epochs: Epochs during which the heads' last layers get no update (1).
        ibot_separate_head: A second head for the patch tokens (DINOv2's ``ibot.separate_head``).
        student_temp, teacher_temp, warmup_teacher_temp, warmup_teacher_temp_epochs: Temperatures; the
            teacher's warms up linearly (0.04 -> 0.07 over 30 epochs).
        centering: ``"sinkhorn_knopp"`` (DINOv2) or ``"centering"`` (DINO/iBOT running mean).
        center_momentum: Momentum of the running-mean centre.
        dino_weight, ibot_weight, koleo_weight: Loss weights (1, 1, 0.1; iBOT: koleo 0).
        layer_decay: Layer-wise learning-rate decay (DINOv2: 0.9 for ViT-L; 1.0 disables).
        gram_weight: DINOv3 Gram anchoring weight (0 disables).
        gram_start_step / gram_update_every_steps: When the Gram teacher (a frozen copy of the EMA
            teacher) is first taken and how often it is refreshed.
        ema_momentum / ema_momentum_end: Teacher momentum at the first and last step (0.992 -> 1).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = "Oquab et al., 2023, DINOv2: Learning Robust Visual Features without Supervision, arXiv:2304.07193"

    def __init__(
        self,
        backbone: str = "vit_small_patch16_224",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_hidden_dim: int = 2048,
        proj_bottleneck_dim: int = 256,
        proj_output_dim: int = 65536,
        norm_last_layer: bool = False,
        freeze_last_layer_epochs: int = 1,
        ibot_separate_head: bool = False,
        student_temp: float = 0.1,
        teacher_temp: float = 0.07,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: float = 30.0,
        centering: Literal["sinkhorn_knopp", "centering"] = "sinkhorn_knopp",
        center_momentum: float = 0.9,
        dino_weight: float = 1.0,
        ibot_weight: float = 1.0,
        koleo_weight: float = 0.1,
        layer_decay: float = 1.0,
        gram_weight: float = 0.0,
        gram_start_step: int = 0,
        gram_update_every_steps: int = 10000,
        ema_momentum: float = 0.992,
        ema_momentum_end: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        if not hasattr(self.backbone, "patch_embed"):
            raise TypeError(f"DINOv2 needs a ViT backbone, got {backbone}")
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.backbone.embed_dim))
        heads = ["projection_head", "ibot_head"] if ibot_separate_head else ["projection_head"]
        # Built without autograd: weight_norm's cached weight would break the teacher's deepcopy (DINO).
        with torch.no_grad():
            for name in heads:
                setattr(self, name, DINOProjectionHead(
                    self.backbone.num_features, proj_hidden_dim, proj_bottleneck_dim, proj_output_dim,
                    freeze_last_layer=freeze_last_layer_epochs, norm_last_layer=norm_last_layer))
        self.teacher = EMATeacher(self, ["backbone", *heads], ema_momentum, ema_momentum_end)
        self.dino_centering = TeacherCentering(proj_output_dim, centering, center_momentum)
        self.ibot_centering = TeacherCentering(proj_output_dim, centering, center_momentum)
        self.koleo = KoLeoLoss()
        self.gram_backbone = make_teacher(self.backbone) if gram_weight > 0 else None

    def trainable_modules(self) -> dict[str, nn.Module]:
        heads = ("projection_head", "ibot_head") if self.hparams.ibot_separate_head else ("projection_head",)
        return {"backbone": self.backbone, **{h: getattr(self, h) for h in heads},
                "mask_token": nn.ParameterList([self.mask_token])}

    def optimizer_groups(self) -> list[dict[str, Any]]:
        return layer_decay_groups(super().optimizer_groups(), self.backbone, self.hparams.layer_decay, self.lr,
                                  extra_embeddings=(self.mask_token,))

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)  # (B, D)

    def teacher_temperature(self, step: int) -> float:
        """Linear warmup from ``warmup_teacher_temp`` to ``teacher_temp``, constant afterwards."""
        warmup_steps = int(round(self.hparams.warmup_teacher_temp_epochs * self.steps_per_epoch()))
        return linear_warmup_constant(step, warmup_steps, self.hparams.warmup_teacher_temp, self.hparams.teacher_temp)

    def _ibot_head(self, teacher: bool) -> nn.Module:
        name = "ibot_head" if self.hparams.ibot_separate_head else "projection_head"
        return getattr(self, f"teacher_{name}" if teacher else name)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        views, masks = batch["views"], batch["masks_ibot"]  # masks: (2B, N) bool over the global crops
        x_global, P, hp = torch.cat(views[:2]), self.backbone.num_prefix_tokens, self.hparams
        m = self.teacher.update(self.global_step, self.total_steps())
        t_temp = self.teacher_temperature(self.global_step)
        with torch.no_grad():
            t_tokens = self.teacher_backbone.forward_features(x_global)  # (2B, P + N, D)
            t_cls = self.teacher_projection_head(self.teacher_backbone.forward_head(t_tokens, pre_logits=True))
            t_cls_probs = self.dino_centering(t_cls, t_temp).chunk(2)  # 2 x (B, K)
        s_tokens = encode_with_mask_tokens(self.backbone, x_global, masks, self.mask_token)  # (2B, P + N, D)
        s_pooled = self.backbone.forward_head(s_tokens, pre_logits=True)  # (2B, D)
        s_logits = list(self.projection_head(s_pooled).chunk(2))
        s_logits += encode_by_resolution(lambda x: self.projection_head(self.backbone(x)), views[2:])
        losses = {"dino": fp32(dino_image_loss)(list(t_cls_probs), s_logits, hp.student_temp)}
        if masks.any():  # DINOv2 masks half the global crops; a batch may have none
            with torch.no_grad():
                t_patch_probs = self.ibot_centering(self._ibot_head(True)(t_tokens[:, P:][masks]), t_temp)  # (M, K)
            s_patch = self._ibot_head(False)(s_tokens[:, P:][masks])  # (M, K)
            losses["ibot"] = fp32(ibot_patch_loss)(t_patch_probs, s_patch, masks, hp.student_temp)
        if hp.koleo_weight > 0:  # on the backbone's pooled features, per global crop (DINOv2)
            losses["koleo"] = sum(fp32(self.koleo)(c) for c in s_pooled.chunk(2))
        if self.gram_backbone is not None and self.global_step >= hp.gram_start_step:
            losses["gram"] = self._gram_loss(x_global, s_tokens[:, P:])
        weights = {"dino": hp.dino_weight, "ibot": hp.ibot_weight, "koleo": hp.koleo_weight, "gram": hp.gram_weight}
        loss = sum(weights[k] * v for k, v in losses.items())
        n = views[0].shape[0]
        for key, value in losses.items():
            self.log(f"train/{key}_loss", value, batch_size=n)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/ema_momentum", m, batch_size=n)
        self.log("train/teacher_temp", t_temp, batch_size=n)
        return loss

    def _gram_loss(self, x_global: Tensor, s_patches: Tensor) -> Tensor:
        """DINOv3's Gram anchoring against a periodically refreshed copy of the EMA teacher."""
        since = self.global_step - self.hparams.gram_start_step
        if since % self.hparams.gram_update_every_steps == 0:
            self.gram_backbone.load_state_dict(self.teacher_backbone.state_dict())
        with torch.no_grad():
            g_patches = self.gram_backbone.forward_features(x_global)[:, self.backbone.num_prefix_tokens:]
        return gram_anchoring_loss(s_patches, g_patches)

    def on_after_backward(self) -> None:
        # The heads' last layers stay fixed during the first epoch(s), as in DINO/DINOv2.
        self.projection_head.cancel_last_layer_gradients(self.current_epoch)
        if self.hparams.ibot_separate_head:
            self.ibot_head.cancel_last_layer_gradients(self.current_epoch)
