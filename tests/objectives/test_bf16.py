"""Every objective trains under ``precision: bf16-mixed`` (what ``auto`` picks on bf16 hardware).

A two-step CPU fit per objective under Lightning's bf16 autocast: the backbone really runs in bf16,
the loss (its numerically sensitive part in an fp32 island, ``sslkit.losses.precision.fp32``) is
finite, and the weights, which checkpoints and published folders hold, stay fp32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from sslkit import objectives as O
from sslkit.masking import IBOTMaskCollator, MultiBlockMaskCollator, RandomMaskCollator, SimMIMMaskCollator
from sslkit.transforms import (
    BYOLViews,
    MaskedImageViews,
    MultiCropViews,
    SharedAugmentCollator,
    SimCLRViews,
    WithOriginal,
    WithRotationView,
)
from tests.conftest import TINY_VIT

VIT = {"backbone": "vit_tiny_patch16_224", "backbone_kwargs": TINY_VIT}
MASKED_VIT = {**TINY_VIT, "patch_size": 4}
HEAD = {"proj_hidden_dim": 64, "proj_output_dim": 32}
TWO_VIEWS = BYOLViews(input_size=32, blur_probs=(0.0, 0.0))
ROTATION = {"class_path": "sslkit.objectives.rotation.FourFoldRotation"}
DYNAMIC = {"backbone": "vit_tiny_patch16_224", "backbone_kwargs": {**VIT["backbone_kwargs"], "dynamic_img_size": True}}
MULTICROP = MultiCropViews(global_crop_size=32, local_crop_size=16, num_local_views=2, blur_probs=(0.0, 0.0, 0.0))

# objective -> (model factory, transform, collate_fn); tiny versions of the smoke tests' set-ups.
CASES: dict[str, tuple[Callable[[], Any], Any, Any]] = {
    "simclr": (lambda: O.SimCLR(**VIT, **HEAD), SimCLRViews(32, blur_prob=0.0), None),
    "essl": (lambda: O.SimCLR(**VIT, **HEAD, aux_loss=ROTATION, aux_weight=0.4),
             WithRotationView(SimCLRViews(32, blur_prob=0.0), SimCLRViews(32, num_views=1, blur_prob=0.0)), None),
    "care": (lambda: O.CARE(**VIT, **HEAD, equivariance_weight=0.1), WithOriginal(SimCLRViews(32, blur_prob=0.0)),
             SharedAugmentCollator(group_size=4, blur_prob=0.0)),
    "mocov3": (lambda: O.MoCoV3(**VIT, **HEAD), TWO_VIEWS, None),
    "byol": (lambda: O.BYOL(**VIT, **HEAD), TWO_VIEWS, None),
    "tico": (lambda: O.TiCo(**VIT, **HEAD), TWO_VIEWS, None),
    "vicreg": (lambda: O.VICReg(**VIT, proj_hidden_dim=64, proj_output_dim=64), TWO_VIEWS, None),
    "barlowtwins": (lambda: O.BarlowTwins(**VIT, proj_hidden_dim=64, proj_output_dim=64), TWO_VIEWS, None),
    "dino": (lambda: O.DINO(backbone="vit_tiny_patch16_224",
                            backbone_kwargs={**VIT["backbone_kwargs"], "dynamic_img_size": True},
                            proj_hidden_dim=64, proj_bottleneck_dim=16, proj_output_dim=128),
             MultiCropViews(global_crop_size=32, local_crop_size=16, num_local_views=2, blur_probs=(0.0, 0.0, 0.0)),
             None),
    "ijepa": (lambda: O.IJEPA(backbone_kwargs=MASKED_VIT, predictor_embed_dim=24, predictor_depth=1,
                              predictor_num_heads=3),
              MaskedImageViews(input_size=32, augment=False), MultiBlockMaskCollator(32, 4)),
    "mae": (lambda: O.MAE(backbone_kwargs=MASKED_VIT, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4),
            MaskedImageViews(input_size=32, min_scale=0.2), RandomMaskCollator(32, 4)),
    "simmim": (lambda: O.SimMIM(backbone_kwargs=MASKED_VIT), MaskedImageViews(input_size=32, min_scale=0.67),
               SimMIMMaskCollator(32, 4, mask_patch_size=8)),
    "dinov2": (lambda: O.DINOv2(**DYNAMIC, proj_hidden_dim=64, proj_bottleneck_dim=16, proj_output_dim=128),
               MULTICROP, IBOTMaskCollator(input_size=32, patch_size=8, mask_ratio=(0.1, 0.5), mask_probability=1.0)),
    "lejepa": (lambda: O.LeJEPA(**DYNAMIC, proj_hidden_dim=64, proj_output_dim=16, sigreg_num_vectors=64), MULTICROP,
               None),
    "msn": (lambda: O.MSN(**DYNAMIC, proj_hidden_dim=64, proj_output_dim=16, num_prototypes=12), MULTICROP,
            RandomMaskCollator(input_size=32, patch_size=8, mask_ratio=0.25)),
    "nnclr": (lambda: O.NNCLR(**VIT, proj_hidden_dim=64, proj_output_dim=16, pred_hidden_dim=32, support_set_size=12),
              SimCLRViews(32, blur_prob=0.0), None),
    "simsiam": (lambda: O.SimSiam(**VIT, proj_hidden_dim=64, proj_output_dim=32, pred_hidden_dim=16, optimizer="sgd",
                                  lr=0.05), SimCLRViews(32, blur_prob=0.0), None),
    "swav": (lambda: O.SwAV(**DYNAMIC, proj_hidden_dim=64, proj_output_dim=16, num_prototypes=10), MULTICROP, None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_finite_in_bf16_weights_stay_fp32(name: str, fit_steps: Callable[..., Any]) -> None:
    factory, transform, collate_fn = CASES[name]
    torch.manual_seed(0)
    model = factory()
    model.warmup_epochs = 0.0
    matmul_dtypes: list[torch.dtype] = []
    model.backbone.blocks[0].mlp.fc1.register_forward_hook(lambda _m, _i, out: matmul_dtypes.append(out.dtype))
    trainer = fit_steps(model, transform, collate_fn=collate_fn, steps=2, precision="bf16-mixed")
    assert trainer.global_step == 2
    assert torch.bfloat16 in matmul_dtypes  # the backbone's matmuls ran under bf16 autocast
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
