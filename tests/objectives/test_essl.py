"""E-SSL: rotations and loss against the authors' code, the aux-loss hook on SimCLR and BYOL, two-step fits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslkit.heads.rotation import RotationPredictionHead
from sslkit.losses.rotation import rotation_prediction_loss
from sslkit.objectives import BYOL, SimCLR, load_objective
from sslkit.objectives.registry import build_aux_loss
from sslkit.objectives.rotation import FourFoldRotation
from sslkit.transforms import SimCLRViews, WithRotationView, four_fold_rotations
from tests.objectives.masked_helpers import TINY_VIT

ROTATION = {"class_path": "sslkit.objectives.rotation.FourFoldRotation", "init_args": {"hidden_dim": 32}}


def _authors_rotate_images(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rdangovs/essl ``cifar10/main.py`` ``rotate_images``, written out (on CPU)."""
    n = images.shape[0]
    rotated, classes = torch.zeros(4 * n, *images.shape[1:]), torch.zeros(4 * n, dtype=torch.long)
    rotated[:n] = images
    rotated[n : 2 * n], classes[n : 2 * n] = images.flip(3).transpose(2, 3), 1
    rotated[2 * n : 3 * n], classes[2 * n : 3 * n] = images.flip(3).flip(2), 2
    rotated[3 * n :], classes[3 * n :] = images.transpose(2, 3).flip(3), 3
    return rotated, classes


def test_rotations_and_loss_match_the_authors_code() -> None:
    torch.manual_seed(0)
    images = torch.randn(3, 3, 8, 8)
    x_rot, labels = four_fold_rotations(images)
    ref_rot, ref_labels = _authors_rotate_images(images)
    assert torch.equal(x_rot, ref_rot) and torch.equal(labels, ref_labels)
    head = RotationPredictionHead(3 * 8 * 8, hidden_dim=16)
    logits = head(x_rot.flatten(1))
    assert torch.allclose(rotation_prediction_loss(logits, labels), F.cross_entropy(logits, ref_labels))
    # A golden value from the definition: uniform logits cost log(4).
    assert math.isclose(float(rotation_prediction_loss(torch.zeros(8, 4), labels[:8])), math.log(4), rel_tol=1e-6)


def test_loss_invariants() -> None:
    logits = torch.randn(8, 4, requires_grad=True)
    labels = torch.arange(4).repeat(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert math.isfinite(float(rotation_prediction_loss(logits.bfloat16(), labels)))
    rotation_prediction_loss(logits, labels).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="rotation_prediction_loss"):
        rotation_prediction_loss(logits, labels[:4])
    with pytest.raises(ValueError, match="square"):
        four_fold_rotations(torch.zeros(2, 3, 8, 6))


def test_aux_loss_spec_is_checked() -> None:
    assert build_aux_loss(None, 8) is None
    assert isinstance(build_aux_loss(ROTATION, 8), FourFoldRotation)
    with pytest.raises(ValueError, match="init_arg"):
        build_aux_loss({"class_path": ROTATION["class_path"], "init_arg": {}}, 8)
    with pytest.raises(ValueError, match="sslkit"):
        build_aux_loss({"class_path": "os.system"}, 8)
    with pytest.raises(ValueError, match="hidden_dimm = 3 is not a FourFoldRotation argument"):
        build_aux_loss({"class_path": ROTATION["class_path"], "init_args": {"hidden_dimm": 3}}, 8)


def test_simclr_with_rotation_two_step_fit_and_reload(fit_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = SimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64, proj_output_dim=32,
                   aux_loss=ROTATION, aux_weight=0.4, warmup_epochs=0)
    head_before = [p.detach().clone() for p in model.aux_loss.parameters()]
    views = WithRotationView(SimCLRViews(32, blur_prob=0.0), SimCLRViews(32, num_views=1, blur_prob=0.0))
    trainer = fit_steps(model, views, steps=2)
    assert trainer.global_step == 2
    for key in ("train/loss", "train/aux_loss"):
        assert math.isfinite(float(trainer.callback_metrics[key]))
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.aux_loss.parameters()))  # head is optimised
    trainer.save_checkpoint(tmp_path / "essl.ckpt")
    reloaded = load_objective(tmp_path / "essl.ckpt")
    assert isinstance(reloaded.aux_loss, FourFoldRotation)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(reloaded(x), model.eval()(x))


def test_byol_with_rotation_two_step_fit(fit_steps) -> None:
    torch.manual_seed(0)
    model = BYOL(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64, proj_output_dim=32,
                 aux_loss=ROTATION, aux_weight=0.4, warmup_epochs=0)
    head_before = [p.detach().clone() for p in model.aux_loss.parameters()]
    views = WithRotationView(SimCLRViews(32, blur_prob=0.0), SimCLRViews(32, num_views=1, blur_prob=0.0))
    trainer = fit_steps(model, views, steps=2)
    assert math.isfinite(float(trainer.callback_metrics["train/aux_loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.aux_loss.parameters()))
    assert all(p.grad is None for p in model.teacher_backbone.parameters())
