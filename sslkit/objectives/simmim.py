"""SimMIM: Xie et al., 2022, "SimMIM: A Simple Framework for Masked Image Modeling"."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sslkit.backbones import create_backbone
from sslkit.backbones.mask_tokens import encode_with_mask_tokens
from sslkit.losses.masked_pixels import masked_patch_pixels, simmim_loss
from sslkit.objectives.base import SSLObjective


class SimMIM(SSLObjective):
    """All patches through the encoder, masked ones as a learned mask token; linear pixel head; L1.

    Reads ``views[0]`` and ``masks_target`` (masked patch indices) from
    :class:`sslkit.masking.SimMIMMaskCollator`.

    Args:
        backbone: A ViT name.
        backbone_kwargs: ``create_backbone`` kwargs (``img_size``, ``patch_size``...).
        **kwargs: Optimisation settings of :class:`SSLObjective`.
    """

    paper = "Xie et al., 2022, SimMIM: A Simple Framework for Masked Image Modeling, arXiv:2111.09886"

    def __init__(
        self,
        backbone: str = "vit_tiny_patch16_224",
        backbone_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.backbone = create_backbone(backbone, **(backbone_kwargs or {}))
        if not hasattr(self.backbone, "patch_embed"):
            raise TypeError(f"SimMIM needs a ViT backbone, got {backbone}")
        self.patch_size = self.backbone.patch_embed.patch_size[0]
        D = self.backbone.embed_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        # SimMIM's 1x1 conv to p*p*C channels + pixel shuffle is this linear map applied per token.
        self.pixel_head = nn.Linear(D, self.patch_size**2 * self.backbone.patch_embed.proj.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x, masked = batch["views"][0], batch["masks_target"]
        mask = torch.zeros(x.shape[0], self.backbone.patch_embed.num_patches, dtype=torch.bool, device=x.device)
        mask.scatter_(1, masked, True)
        tokens = encode_with_mask_tokens(self.backbone, x, mask, self.mask_token)[:, self.backbone.num_prefix_tokens :]
        p = self.pixel_head(tokens.gather(1, masked.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])))  # (B, M, p*p*C)
        loss = simmim_loss(p, masked_patch_pixels(x, masked, self.patch_size))
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss
