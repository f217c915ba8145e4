"""MoCo v3: loss against the official code's ``contrastive_loss``, heads against ``_build_mlp``, a two-step fit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslkit.heads import mocov3_mlp
from sslkit.losses import mocov3_loss
from sslkit.objectives import MoCoV3
from sslkit.transforms import BYOLViews

TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 48, "num_heads": 3}


def _official_contrastive_loss(q: torch.Tensor, k: torch.Tensor, t: float) -> torch.Tensor:
    """``MoCo.contrastive_loss`` from facebookresearch/moco-v3 ``moco/builder.py`` (one process)."""
    q = nn.functional.normalize(q, dim=1)
    k = nn.functional.normalize(k, dim=1)
    logits = torch.einsum("nc,mc->nm", [q, k]) / t
    labels = torch.arange(logits.shape[0], dtype=torch.long)
    return nn.CrossEntropyLoss()(logits, labels) * (2 * t)


def _official_build_mlp(num_layers: int, input_dim: int, mlp_dim: int, output_dim: int, last_bn: bool = True) -> nn.Sequential:
    """``MoCo._build_mlp`` from the official ``moco/builder.py``."""
    mlp: list[nn.Module] = []
    for layer in range(num_layers):
        dim1 = input_dim if layer == 0 else mlp_dim
        dim2 = output_dim if layer == num_layers - 1 else mlp_dim
        mlp.append(nn.Linear(dim1, dim2, bias=False))
        if layer < num_layers - 1:
            mlp.append(nn.BatchNorm1d(dim2))
            mlp.append(nn.ReLU(inplace=True))
        elif last_bn:
            mlp.append(nn.BatchNorm1d(dim2, affine=False))
    return nn.Sequential(*mlp)


def test_loss_matches_official_code() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(8, 16), torch.randn(8, 16)
    for t in (0.2, 1.0):
        expected = _official_contrastive_loss(q, k, t)
        torch.testing.assert_close(mocov3_loss(q, k, t), expected)
    # the official formula's value on these inputs, pinned so a change on either side shows up
    assert math.isclose(float(mocov3_loss(q, k, 0.2)), 0.91174096, rel_tol=1e-5)


def test_loss_invariants() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16)
    mocov3_loss(q, k).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(mocov3_loss(q.detach(), k))
    # the positive pair on the diagonal: identical q and k score lower than shuffled keys
    assert mocov3_loss(k, k) < mocov3_loss(k, k.roll(1, 0))
    with pytest.raises(ValueError, match="mocov3_loss"):
        mocov3_loss(q, k[:, :8])


@pytest.mark.parametrize("num_layers,last_bn", [(3, True), (2, False)])
def test_mlp_is_the_official_mlp(num_layers: int, last_bn: bool) -> None:
    torch.manual_seed(0)
    ours, official = mocov3_mlp(num_layers, 12, 32, 8, last_bn), _official_build_mlp(num_layers, 12, 32, 8, last_bn)
    official.load_state_dict({k.removeprefix("layers."): v for k, v in ours.state_dict().items()}, strict=True)
    x = torch.randn(6, 12)
    torch.testing.assert_close(ours(x), official(x))


def test_two_step_fit_teacher_moves_without_gradients(fit_steps) -> None:
    torch.manual_seed(0)
    model = MoCoV3(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64,
                   proj_output_dim=32, warmup_epochs=0)
    teacher_before = [p.detach().clone() for p in model.teacher_backbone.parameters()]
    trainer = fit_steps(model, BYOLViews(input_size=32, blur_probs=(0.0, 0.0)), steps=2)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(teacher_before, model.teacher_backbone.parameters()))
    teacher = [*model.teacher_backbone.parameters(), *model.teacher_projection_head.parameters()]
    assert all(p.grad is None and not p.requires_grad for p in teacher)
    in_optimizer = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert not in_optimizer & {id(p) for p in teacher}
    assert model.eval_backbone() is model.teacher_backbone
