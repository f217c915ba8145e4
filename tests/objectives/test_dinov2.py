"""DINOv2 / iBOT: a two-step multi-crop fit with block-masked global crops; the teacher sees unmasked
global crops only and moves; layer-wise LR decay; Gram anchoring and register tokens."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from sslkit.masking import IBOTMaskCollator
from sslkit.objectives import DINO, DINOv2, load_objective
from tests.objectives.new_methods import TINY_VIT_DYNAMIC, moved, multicrop_views, record_input_sizes, snapshot

HEAD = {"proj_hidden_dim": 64, "proj_bottleneck_dim": 16, "proj_output_dim": 128}


def _masks(probability: float = 0.5) -> IBOTMaskCollator:
    return IBOTMaskCollator(input_size=32, patch_size=8, mask_ratio=(0.1, 0.5), mask_probability=probability)


def test_two_step_fit_masks_the_student_only(fit_ema_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = DINOv2(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT_DYNAMIC, **HEAD, warmup_epochs=0,
                   layer_decay=0.5)
    teacher_calls, student_calls = record_input_sizes(model.teacher_backbone.patch_embed), record_input_sizes(model.backbone.patch_embed)
    mask_token = model.mask_token.detach().clone()
    trainer = fit_ema_steps(model, multicrop_views(num_local=2), collate_fn=_masks(probability=1.0))
    for key in ("dino", "ibot", "koleo"):
        assert math.isfinite(float(trainer.callback_metrics[f"train/{key}_loss"]))
    assert teacher_calls == [(16, 3, 32, 32)] * 2  # teacher: the global crops only, one pass per step
    assert student_calls == [(16, 3, 32, 32), (16, 3, 16, 16)] * 2  # one pass per resolution per step
    assert not torch.equal(mask_token, model.mask_token)  # the mask token learns from the iBOT term
    # 2 steps per epoch here, so the 30-epoch warmup is 60 steps: 0.04 + 0.03 / 60 at step 1
    assert float(trainer.callback_metrics["train/teacher_temp"]) == pytest.approx(0.04 + 0.03 / 60)
    groups = trainer.optimizers[0].param_groups
    lr_of = {id(p): g["initial_lr"] for g in groups for p in g["params"]}
    assert lr_of[id(model.backbone.blocks[1].attn.qkv.weight)] == pytest.approx(model.lr * 0.5)
    assert lr_of[id(model.backbone.patch_embed.proj.weight)] == pytest.approx(model.lr * 0.5**3)
    assert lr_of[id(model.mask_token)] == pytest.approx(model.lr * 0.5**3)
    assert lr_of[id(next(model.projection_head.parameters()))] == pytest.approx(model.lr)
    trainer.save_checkpoint(tmp_path / "dinov2.ckpt")
    reloaded = load_objective(tmp_path / "dinov2.ckpt")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(reloaded.eval_backbone()(x), model.eval().eval_backbone()(x))


def test_ibot_recipe_setting_separate_head_gram_and_registers(fit_ema_steps) -> None:
    torch.manual_seed(0)
    model = DINOv2(backbone="vit_tiny_patch16_224", backbone_kwargs={**TINY_VIT_DYNAMIC, "reg_tokens": 2}, **HEAD,
                   centering="centering", koleo_weight=0.0, ibot_separate_head=True, gram_weight=1.0,
                   gram_update_every_steps=100, warmup_epochs=0)
    assert model.backbone.num_prefix_tokens == 3
    ibot_head = snapshot(model.ibot_head)
    trainer = fit_ema_steps(model, multicrop_views(num_local=0), collate_fn=_masks(probability=1.0))
    assert "train/koleo_loss" not in trainer.callback_metrics
    assert math.isfinite(float(trainer.callback_metrics["train/gram_loss"]))
    assert moved(ibot_head, model.ibot_head)
    assert model.dino_centering.center.value.abs().sum() > 0 and model.ibot_centering.center.value.abs().sum() > 0
    # the Gram teacher was taken at step 0 and is not an EMA: it lags the teacher
    assert moved(snapshot(model.gram_backbone), model.teacher_backbone)


def test_without_ibot_koleo_and_sinkhorn_it_is_dino() -> None:
    """DINOv2 with running-mean centring, iBOT weight 0 and no KoLeo is DINO: same loss, gradients and centre
    on the same weights and views, step after step (the iBOT recipe differs from DINO by its patch term only)."""
    torch.manual_seed(0)
    kw = {"backbone": "vit_tiny_patch16_224", "backbone_kwargs": TINY_VIT_DYNAMIC, **HEAD, "freeze_last_layer_epochs": 0,
          "warmup_teacher_temp_epochs": 0, "ema_momentum": 0.99, "ema_momentum_end": 0.99}
    dino = DINO(**kw)
    dinov2 = DINOv2(centering="centering", koleo_weight=0.0, ibot_weight=0.0, **kw)
    for name in ("backbone", "projection_head", "teacher_backbone", "teacher_projection_head"):
        getattr(dinov2, name).load_state_dict(getattr(dino, name).state_dict())
    trainer = SimpleNamespace(barebones=True, global_step=0, estimated_stepping_batches=10, max_epochs=1,
                              current_epoch=0, optimizers=[], training=True)
    dino.trainer = dinov2.trainer = trainer
    masks = torch.zeros(8, 16, dtype=torch.bool)  # no masked patch: the same student input as DINO's
    for _ in range(3):
        views = [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32), torch.randn(4, 3, 16, 16)]
        dino.zero_grad(), dinov2.zero_grad()
        loss, loss2 = dino.training_step({"views": views}, 0), dinov2.training_step({"views": views, "masks_ibot": masks}, 0)
        loss.backward(), loss2.backward()
        assert float(loss2.detach()) == pytest.approx(float(loss.detach()), rel=1e-5)
        grad = dino.backbone.blocks[0].attn.qkv.weight.grad
        assert torch.allclose(dinov2.backbone.blocks[0].attn.qkv.weight.grad, grad, rtol=1e-4, atol=1e-7 * grad.abs().max())
        assert torch.allclose(dinov2.dino_centering.center.value, dino.criterion.center, rtol=1e-5, atol=1e-8)
    assert dino.criterion.center.abs().sum() > 0  # the centre moved, so the later steps compared something
