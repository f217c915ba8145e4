"""SwAV: multi-crop (one backbone pass per resolution), prototypes frozen then moving, the queue joins
Sinkhorn once full, checkpointed."""

from __future__ import annotations

import math

import torch

from sslkit.objectives import SwAV, load_objective
from tests.objectives.new_methods import TINY_VIT_DYNAMIC, moved, multicrop_views, record_input_sizes, snapshot


def _model(**kwargs: object) -> SwAV:
    return SwAV(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT_DYNAMIC, proj_hidden_dim=64,
                proj_output_dim=16, num_prototypes=10, warmup_epochs=0, **kwargs)


def test_two_step_multicrop_fit_moves_prototypes_after_the_freeze(fit_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = _model(queue_size=8, queue_start_epoch=0, freeze_prototypes_steps=1)
    calls = record_input_sizes(model.backbone)
    before = snapshot(model.prototypes)
    trainer = fit_steps(model, multicrop_views(num_local=2), steps=2, batch_size=8)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert calls == [(16, 3, 32, 32), (16, 3, 16, 16)] * 2  # one pass per resolution per step
    assert moved(before, model.prototypes)  # frozen in step 0, updated in step 1
    assert all(q.is_full() for q in model.queues)  # 8 per global crop after step 0
    assert float(trainer.callback_metrics["train/queue_in_use"]) == 1.0  # step 1: full and past the start epoch
    trainer.save_checkpoint(tmp_path / "swav.ckpt")
    reloaded = load_objective(tmp_path / "swav.ckpt")
    assert all(torch.equal(a.bank, b.bank) for a, b in zip(reloaded.queues, model.queues))


def test_prototypes_stay_frozen_during_the_freeze(fit_steps) -> None:
    torch.manual_seed(0)
    model = _model(freeze_prototypes_steps=10)
    model.prototypes.normalize()
    before = snapshot(model.prototypes)
    fit_steps(model, multicrop_views(num_local=0), steps=2, batch_size=8)
    model.prototypes.normalize()
    assert all(torch.allclose(a, b) for a, b in zip(before, model.prototypes.parameters()))


def test_a_full_queue_waits_for_its_start_epoch(fit_steps) -> None:
    # The paper's small-batch runs start the queue at epoch 15: a queue joining Sinkhorn while the features
    # still drift lets the whole batch take the prototypes its stale queued features leave free (a collapse).
    torch.manual_seed(0)
    model = _model(queue_size=8, queue_start_epoch=1, freeze_prototypes_steps=0)
    trainer = fit_steps(model, multicrop_views(num_local=0), steps=2, batch_size=8)
    assert all(q.is_full() for q in model.queues)  # filled in step 0 ...
    assert float(trainer.callback_metrics["train/queue_in_use"]) == 0.0  # ... but epoch 0 < queue_start_epoch
