"""SimSiam: a two-step fit (loss finite, backbone and predictor move, the checkpoint reloads safely)."""

from __future__ import annotations

import math

import torch

from sslkit.objectives import SimSiam, load_objective
from tests.objectives.new_methods import TINY_VIT, moved, snapshot, two_views


def test_two_step_fit_and_safe_reload(fit_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = SimSiam(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64,
                    proj_output_dim=32, pred_hidden_dim=16, optimizer="sgd", lr=0.05, warmup_epochs=0)
    backbone, predictor = snapshot(model.backbone), snapshot(model.prediction_head)
    trainer = fit_steps(model, two_views())
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert -1.0 <= float(trainer.callback_metrics["train/loss"]) <= 1.0
    assert moved(backbone, model.backbone) and moved(predictor, model.prediction_head)
    assert model.eval_backbone() is model.backbone
    trainer.save_checkpoint(tmp_path / "simsiam.ckpt")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(load_objective(tmp_path / "simsiam.ckpt").eval_backbone()(x), model.eval().eval_backbone()(x))
