"""VICReg: a two-step fit on shards with a tiny ViT; the loss is finite and the backbone learns."""

from __future__ import annotations

import math

import torch

from sslkit.objectives import VICReg
from sslkit.transforms import BYOLViews
from tests.conftest import TINY_VIT


def test_two_step_fit(fit_steps) -> None:
    torch.manual_seed(0)
    model = VICReg(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64, proj_output_dim=64,
                   warmup_epochs=0)
    before = [p.detach().clone() for p in model.backbone.parameters()]
    trainer = fit_steps(model, BYOLViews(input_size=32, blur_probs=(0.0, 0.0)), steps=2)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert trainer.global_step == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))
    assert model.eval_backbone() is model.backbone
