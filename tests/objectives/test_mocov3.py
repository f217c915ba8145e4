"""MoCo v3: a two-step fit with an EMA teacher (its MLPs: tests/heads/test_mocov3_mlp.py)."""

from __future__ import annotations

import torch

from sslkit.objectives import MoCoV3
from sslkit.transforms import BYOLViews
from tests.conftest import TINY_VIT


def test_two_step_fit_teacher_moves_without_gradients(fit_ema_steps) -> None:
    torch.manual_seed(0)
    model = MoCoV3(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64,
                   proj_output_dim=32, warmup_epochs=0)
    trainer = fit_ema_steps(model, BYOLViews(input_size=32, blur_probs=(0.0, 0.0)), steps=2)
