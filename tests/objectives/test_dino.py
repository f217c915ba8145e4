"""DINO: a two-step multi-crop fit on shards; the teacher sees only global crops, moves without
gradients; the last layer stays frozen in the first epoch; the teacher temperature warms up."""

from __future__ import annotations

import math

import pytest
import torch

from sslkit.objectives import DINO, load_objective
from sslkit.transforms import MultiCropViews
from tests.conftest import TINY_VIT as PLAIN_VIT

TINY_VIT = {**PLAIN_VIT, "dynamic_img_size": True}


def test_two_step_multicrop_fit(fit_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = DINO(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64,
                 proj_bottleneck_dim=16, proj_output_dim=128, warmup_teacher_temp_epochs=30, warmup_epochs=0)
    teacher_before = [p.detach().clone() for p in model.teacher_backbone.parameters()]
    head_before = {n: p.detach().clone() for n, p in model.projection_head.named_parameters()}
    sizes: dict[str, set[int]] = {"teacher": set(), "student": set()}
    model.teacher_backbone.register_forward_pre_hook(lambda _, args: sizes["teacher"].add(args[0].shape[-1]))
    model.backbone.register_forward_pre_hook(lambda _, args: sizes["student"].add(args[0].shape[-1]))
    views = MultiCropViews(global_crop_size=32, local_crop_size=16, num_local_views=2, blur_probs=(0.0, 0.0, 0.0))

    trainer = fit_steps(model, views, steps=2)

    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert sizes == {"teacher": {32}, "student": {32, 16}}
    # 2 steps per epoch here, so the 30-epoch warmup is 60 steps: 0.04 + 0.03 / 60 at step 1
    assert float(trainer.callback_metrics["train/teacher_temp"]) == pytest.approx(0.04 + 0.03 / 60)
    assert any(not torch.equal(a, b) for a, b in zip(teacher_before, model.teacher_backbone.parameters()))
    teacher = [*model.teacher_backbone.parameters(), *model.teacher_projection_head.parameters()]
    assert all(p.grad is None and not p.requires_grad for p in teacher)
    in_optimizer = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert not in_optimizer & {id(p) for p in teacher}
    changed = {n for n, p in model.projection_head.named_parameters() if not torch.equal(head_before[n], p)}
    assert changed and not any(n.startswith("last_layer") for n in changed)  # frozen during epoch 0
    assert model.eval_backbone() is model.teacher_backbone

    path = tmp_path / "dino.ckpt"
    trainer.save_checkpoint(path)
    reloaded = load_objective(path)
    torch.testing.assert_close(reloaded.criterion.center, model.criterion.center)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(reloaded.eval_backbone()(x), model.eval().eval_backbone()(x))
