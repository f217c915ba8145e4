"""LeJEPA: no teacher and no stop-gradient (every view's pass gets gradients), one pass per resolution."""

from __future__ import annotations

import math

import pytest
import torch

from sslkit.objectives import LeJEPA, load_objective
from tests.objectives.new_methods import TINY_VIT_DYNAMIC, moved, multicrop_views, record_input_sizes, snapshot


def test_two_step_multicrop_fit(fit_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = LeJEPA(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT_DYNAMIC, proj_hidden_dim=64,
                   proj_output_dim=16, sigreg_num_vectors=64, warmup_epochs=0)
    assert not any(name.startswith("teacher") for name, _ in model.named_children())
    calls = record_input_sizes(model.backbone)
    before = snapshot(model.backbone)
    trainer = fit_steps(model, multicrop_views(num_local=2), steps=2, batch_size=8)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert calls == [(16, 3, 32, 32), (16, 3, 16, 16)] * 2
    assert moved(before, model.backbone)
    trainer.save_checkpoint(tmp_path / "lejepa.ckpt")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(load_objective(tmp_path / "lejepa.ckpt").eval_backbone()(x), model.eval().eval_backbone()(x))


def test_gradient_reaches_global_and_local_views() -> None:
    torch.manual_seed(0)
    model = LeJEPA(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT_DYNAMIC, proj_hidden_dim=32,
                   proj_output_dim=8, sigreg_num_vectors=16)
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    views = [torch.randn(4, 3, 32, 32, requires_grad=True) for _ in range(2)] + [torch.randn(4, 3, 16, 16, requires_grad=True)]
    model.training_step({"views": views}, 0).backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in views)  # no stop-gradient anywhere
    with pytest.raises(ValueError, match="at least one local view"):
        model.training_step({"views": views[:2]}, 0)
