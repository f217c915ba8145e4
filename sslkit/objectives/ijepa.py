"""I-JEPA: Assran et al., 2023, "Self-Supervised Learning from Images with a Joint-Embedding
Predictive Architecture"."""

from __future__ import annotations

from typing import Any, Literal

import torch

from sslkit.backbones import IJEPAPredictor, create_backbone
from sslkit.losses.ijepa import ijepa_loss, ijepa_targets
from sslkit.objectives.base import SSLObjective
from sslkit.teacher import EMATeacher


class IJEPA(SSLObjective):
    """Context encoder on the context block only, narrow predictor, EMA target encoder.

    Reads ``views[0]`` and the masks of :class:`sslkit.masking.MultiBlockMaskCollator`
    (``masks_context``, ``masks_context_lens``, ``masks_target``).

    Args:
        backbone: A ViT name (sslkit's ``VisionTransformer``: the encoder must keep tokens).
        backbone_kwargs: ``create_backbone`` kwargs (``img_size``, ``patch_size``, ``class_token``...).
        predictor_embed_dim: Predictor width (paper: 384 for ViT-H, i.e. narrower than the encoder).
        predictor_depth: Predictor blocks (paper: 12 for ViT-H; 6 for ViT-B in lightly's example).
        predictor_num_heads: Predictor attention heads.
        loss: ``"smooth_l1"`` (authors' code) or ``"l2"`` (paper's text).
        ema_momentum: Target-encoder momentum at step 0, cosine-increased to ``ema_momentum_end`` (0.996 → 1).
        ema_momentum_end: Target-encoder momentum at the last step.
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = (
        "Assran et al., 2023, Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture, "
        "arXiv:2301.08243"
    )

    def __init__(
        self,
        backbone: str = "vit_tiny_patch16_224",
        backbone_kwargs: dict[str, Any] | None = None,
        predictor_embed_dim: int = 384,
        predictor_depth: int = 6,
        predictor_num_heads: int = 12,
        loss: Literal["smooth_l1", "l2"] = "smooth_l1",
        ema_momentum: float = 0.996,
        ema_momentum_end: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        if not hasattr(self.backbone, "patch_embed"):
            raise TypeError(f"I-JEPA needs a ViT backbone, got {backbone}")
        self.teacher = EMATeacher(self, ["backbone"], ema_momentum, ema_momentum_end)
        self.predictor = IJEPAPredictor(
            num_patches=self.backbone.patch_embed.num_patches,
            embed_dim=self.backbone.embed_dim,
            predictor_embed_dim=predictor_embed_dim,
            depth=predictor_depth,
            num_heads=predictor_num_heads,
            varlen=self.backbone.varlen,
        )
        self.loss_kind = loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x = batch["views"][0]
        context, context_lens, targets = batch["masks_context"], batch.get("masks_context_lens"), batch["masks_target"]
        B = targets.shape[0]
        P = self.backbone.num_prefix_tokens
        m = self.teacher.update(self.global_step, self.total_steps())

        with torch.no_grad():
            h = ijepa_targets(self.teacher_backbone.forward_features(x)[:, P:], targets)  # (B*M, Kt, D)
        z = self.backbone.forward_features(x, keep=context, keep_lens=context_lens)[:, P:]  # (B, Kc, D)
        # Each image's context predicts each of its M target blocks; the predictor repeats the context
        # after its (narrower) input projection, so the repeat is cheap.
        p = self.predictor(z, context, targets.flatten(0, 1), context_lens=context_lens)  # (B*M, Kt, D)
        loss = ijepa_loss(p, h, self.loss_kind)

        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        self.log("train/ema_momentum", m, batch_size=B)
        return loss
