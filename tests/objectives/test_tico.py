"""TiCo: a two-step fit on shards; the EMA teacher moves without gradients; the covariance reloads."""

from __future__ import annotations

import torch

from sslkit.objectives import TiCo, load_objective
from sslkit.transforms import BYOLViews
from tests.conftest import TINY_VIT


def test_two_step_fit_teacher_moves_without_gradients(fit_ema_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = TiCo(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64, proj_output_dim=32,
                 warmup_epochs=0)
    trainer = fit_ema_steps(model, BYOLViews(input_size=32, blur_probs=(0.0, 0.0)), steps=2)

    path = tmp_path / "tico.ckpt"
    trainer.save_checkpoint(path)
    reloaded = load_objective(path)
    assert model.criterion.C.abs().sum() > 0
    assert torch.equal(reloaded.criterion.C, model.criterion.C)
