"""MAE: He et al., 2022, "Masked Autoencoders Are Scalable Vision Learners"."""

from __future__ import annotations

from typing import Any

import torch

from sslkit.backbones import MAEDecoder, create_backbone
from sslkit.losses.masked_pixels import mae_loss, masked_patch_pixels
from sslkit.objectives.base import SSLObjective


class MAE(SSLObjective):
    """Encoder on the visible patches only, light decoder, pixel loss on the masked patches.

    Reads ``views[0]`` and the masks of :class:`sslkit.masking.RandomMaskCollator`
    (``masks_context``: visible patches, ``masks_target``: masked patches).

    Args:
        backbone: A ViT name (sslkit's ``VisionTransformer``: the encoder must keep tokens).
        backbone_kwargs: ``create_backbone`` kwargs (``img_size``, ``patch_size``...).
        decoder_embed_dim: Decoder width (MAE: 512).
        decoder_depth: Decoder blocks (MAE: 8; 1-2 still works for linear probing, paper Table 1a).
        decoder_num_heads: Decoder attention heads (MAE: 16).
        norm_pix_loss: Regress per-patch normalised pixels (MAE's default, better representations).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = "He et al., 2022, Masked Autoencoders Are Scalable Vision Learners, arXiv:2111.06377"

    def __init__(
        self,
        backbone: str = "vit_tiny_patch16_224",
        backbone_kwargs: dict[str, Any] | None = None,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        norm_pix_loss: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        if not hasattr(self.backbone, "patch_embed"):
            raise TypeError(f"MAE needs a ViT backbone, got {backbone}")
        self.patch_size = self.backbone.patch_embed.patch_size[0]
        self.decoder = MAEDecoder(
            num_patches=self.backbone.patch_embed.num_patches,
            patch_size=self.patch_size,
            embed_dim=self.backbone.embed_dim,
            decoder_embed_dim=decoder_embed_dim,
            depth=decoder_depth,
            num_heads=decoder_num_heads,
            num_prefix_tokens=self.backbone.num_prefix_tokens,
            in_chans=self.backbone.patch_embed.proj.in_channels,
        )
        self.norm_pix_loss = norm_pix_loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x = batch["views"][0]
        visible, masked = batch["masks_context"], batch["masks_target"]
        feats = self.backbone.forward_features(x, keep=visible)  # (B, P + K, D): visible tokens only
        p = self.decoder(feats, visible, targets=masked)  # (B, N - K, p*p*C)
        loss = mae_loss(p, masked_patch_pixels(x, masked, self.patch_size), norm_pix=self.norm_pix_loss)
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss
