"""NNCLR: the support set fills from the batches (gathered across ranks), the positives come from it,
and it is checkpointed."""

from __future__ import annotations

import math

import torch

from sslkit.objectives import NNCLR, load_objective
from tests.objectives.new_methods import TINY_VIT, moved, snapshot, two_views


def test_two_step_fit_fills_and_checkpoints_the_support_set(fit_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = NNCLR(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64, proj_output_dim=16,
                  pred_hidden_dim=32, support_set_size=12, warmup_epochs=0)
    before = snapshot(model.backbone)
    trainer = fit_steps(model, two_views(), steps=2, batch_size=8)  # 16 projections into a 12-slot queue: it wraps
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert moved(before, model.backbone)
    assert model.support_set.is_full() and int(model.support_set.bank_ptr) == 4
    trainer.save_checkpoint(tmp_path / "nnclr.ckpt")
    reloaded = load_objective(tmp_path / "nnclr.ckpt")
    assert torch.equal(reloaded.support_set.bank, model.support_set.bank)


def test_positives_are_support_set_rows() -> None:
    torch.manual_seed(0)
    model = NNCLR(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=32, proj_output_dim=8,
                  pred_hidden_dim=16, support_set_size=6)
    model.support_set.enqueue(torch.randn(6, 8))
    bank = model.support_set.bank.clone()  # the step enqueues its batch after the lookup
    seen: list[torch.Tensor] = []
    real = model.criterion.forward
    model.criterion.forward = lambda a, b: (seen.append(a), real(a, b))[1]  # type: ignore[method-assign]
    model.trainer = type("T", (), {"global_step": 0})()  # training_step only logs; no Trainer needed
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    model.training_step({"views": [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]}, 0)
    assert all(any(torch.equal(row, b) for b in bank) for nn_rows in seen for row in nn_rows)
