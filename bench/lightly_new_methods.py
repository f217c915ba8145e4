"""lightly references for issue #16's methods in ``bench/quality.py``: iBOT (DINOv2's objective with
running-mean centring and no KoLeo, the pieces lightly ships) and LeJEPA, written as lightly's examples
and benchmarks compose them (``MaskedVisionTransformerTIMM``, ``DINOProjectionHead``, ``DINOLoss``,
``IBOTPatchLoss``, ``LeJEPAProjectionHead``, ``LeJEPALoss``, ``update_momentum``)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from vs_lightly import timm_vit  # noqa: I001  (bench/ is on sys.path)


class LightlyIBOT(nn.Module):
    """Student: masked-ViT with a mask token on the global crops, plain on the local crops; EMA teacher on
    the unmasked global crops; one shared DINO head for the class token and the masked patch tokens."""

    def __init__(self, vit_kw: dict[str, Any], out_dim: int, hidden_dim: int = 512, bottleneck_dim: int = 64,
                 momentum: float = 0.99, teacher_temp: float = 0.04) -> None:
        from lightly.loss import DINOLoss, IBOTPatchLoss
        from lightly.models.modules import DINOProjectionHead, MaskedVisionTransformerTIMM

        super().__init__()
        vit = timm_vit(vit_kw, dynamic_img_size=True)
        self.backbone = MaskedVisionTransformerTIMM(vit=vit)
        with torch.no_grad():  # weight_norm's cached weight would break the deepcopy below
            self.head = DINOProjectionHead(vit.embed_dim, hidden_dim, bottleneck_dim, out_dim, freeze_last_layer=0)
        self.teacher_backbone, self.teacher_head = copy.deepcopy(self.backbone), copy.deepcopy(self.head)
        for p in [*self.teacher_backbone.parameters(), *self.teacher_head.parameters()]:
            p.requires_grad_(False)
        self.dino_loss = DINOLoss(out_dim, warmup_teacher_temp=teacher_temp, teacher_temp=teacher_temp)
        self.ibot_loss = IBOTPatchLoss(out_dim, teacher_temp=teacher_temp)
        self.momentum, self.teacher_temp = momentum, teacher_temp

    def step(self, batch: dict[str, Any]) -> torch.Tensor:
        from lightly.models.utils import update_momentum

        views, masks = batch["views"], batch["masks_ibot"]  # masks: (2B, N) bool
        update_momentum(self.backbone, self.teacher_backbone, self.momentum)
        update_momentum(self.head, self.teacher_head, self.momentum)
        x_global, prefix = torch.cat(views[:2]), self.backbone.vit.num_prefix_tokens
        with torch.no_grad():
            t_tokens = self.teacher_backbone.encode(x_global)
            t_cls, t_patch = self.teacher_head(t_tokens[:, 0]), self.teacher_head(t_tokens[:, prefix:][masks])
        seq_mask = torch.cat([masks.new_zeros(len(masks), prefix), masks], dim=1)  # lightly's mask covers the prefix too
        s_tokens = self.backbone.encode(x_global, mask=seq_mask)
        s_cls, s_patch = self.head(s_tokens[:, 0]), self.head(s_tokens[:, prefix:][masks])
        s_local = self.head(self.backbone(torch.cat(views[2:]))).chunk(len(views) - 2)
        dino = self.dino_loss(list(t_cls.chunk(2)), [*s_cls.chunk(2), *s_local], teacher_temp=self.teacher_temp)
        side = int(masks.shape[1] ** 0.5)
        ibot = self.ibot_loss(t_patch, s_patch, masks.view(-1, side, side), teacher_temp=self.teacher_temp)
        return dino + ibot


class LightlyLeJEPA(nn.Module):
    """timm ViT + ``LeJEPAProjectionHead``; ``LeJEPALoss`` over the global and local views' projections."""

    def __init__(self, vit_kw: dict[str, Any], hidden_dim: int = 1024, out_dim: int = 128) -> None:
        from lightly.loss import LeJEPALoss
        from lightly.models.modules import LeJEPAProjectionHead

        super().__init__()
        self.backbone = timm_vit(vit_kw, dynamic_img_size=True)
        self.projection_head = LeJEPAProjectionHead(self.backbone.num_features, hidden_dim, out_dim)
        self.criterion = LeJEPALoss()

    def step(self, batch: dict[str, Any]) -> torch.Tensor:
        views = batch["views"]
        z_global = self.projection_head(self.backbone(torch.cat(views[:2]))).chunk(2)
        z_local = self.projection_head(self.backbone(torch.cat(views[2:]))).chunk(len(views) - 2)
        return self.criterion(local_proj=torch.stack(z_local), global_proj=torch.stack(z_global))
