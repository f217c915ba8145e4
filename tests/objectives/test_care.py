"""CARE: the loss against the authors' code, orthogonal invariance, shared-augmentation collator, a two-step fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sslkit.losses.care import orthogonal_equivariance_loss
from sslkit.objectives import CARE
from sslkit.transforms import SharedAugmentCollator, SimCLRViews, WithOriginal
from tests.objectives.masked_helpers import TINY_VIT


def _authors_info_nce(out_1: torch.Tensor, out_2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sharut/CARE ``utils.infoNCE`` (first return value), written out, on normalised embeddings."""
    bs = out_1.shape[0]
    out = torch.cat([out_1, out_2])
    neg = torch.exp(out @ out.t() / temperature)
    mask = torch.ones(bs, 2 * bs, dtype=torch.bool)
    for i in range(bs):
        mask[i, i] = mask[i, i + bs] = False
    neg = neg.masked_select(torch.cat([mask, mask])).view(2 * bs, -1)
    pos = torch.exp((out_1 * out_2).sum(-1) / temperature)
    pos = torch.cat([pos, pos])
    return (-torch.log(pos / (pos + neg.sum(-1)))).mean()


def _authors_equivariance(out_1: torch.Tensor, out_2: torch.Tensor, num_chunks: int) -> torch.Tensor:
    """Sharut/CARE ``utils.equivariance_loss``, written out."""
    chunk = out_1.shape[0] // num_chunks
    loss = 0.0
    for k in range(num_chunks):
        s1, s2 = out_1[k * chunk : (k + 1) * chunk], out_2[k * chunk : (k + 1) * chunk]
        off = ~torch.eye(chunk, dtype=torch.bool)
        t1, t2 = (s1 @ s1.t()).masked_select(off).view(chunk, -1), (s2 @ s2.t()).masked_select(off).view(chunk, -1)
        loss += 2 * torch.norm(t1 - t2, p="fro", dim=-1).pow(2).mean()
    return loss / num_chunks


def test_loss_matches_the_authors_code() -> None:
    torch.manual_seed(0)
    z_a, z_b, z_1, z_2 = (F.normalize(torch.randn(16, 32), dim=1) for _ in range(4))
    model = CARE(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, temperature=0.5)
    golden = _authors_info_nce(z_a, z_b, 0.5) + 0.03 * _authors_equivariance(z_1, z_2, num_chunks=4)
    ours = model.criterion(z_a, z_b) + 0.03 * orthogonal_equivariance_loss(z_1, z_2, group_size=4)
    assert torch.allclose(ours, golden, atol=1e-5)


def test_equivariance_loss_vanishes_for_orthogonal_maps_only() -> None:
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    rotations = [torch.linalg.qr(torch.randn(16, 16))[0] for _ in range(2)]  # one orthogonal map per group
    rotated = torch.cat([z[:4] @ rotations[0], z[4:] @ rotations[1]])
    assert float(orthogonal_equivariance_loss(z, rotated, group_size=4)) < 1e-10
    assert float(orthogonal_equivariance_loss(z, z @ torch.randn(16, 16), group_size=4)) > 1e-2


def test_loss_invariants() -> None:
    z_1, z_2 = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert math.isfinite(float(orthogonal_equivariance_loss(z_1.bfloat16(), z_2.bfloat16(), 4)))
    orthogonal_equivariance_loss(z_1, z_2, 4).backward()
    assert z_1.grad is not None and z_1.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="multiple of group_size"):
        orthogonal_equivariance_loss(z_1, z_2, 3)
    with pytest.raises(ValueError, match="two \\(B, D\\)"):
        orthogonal_equivariance_loss(z_1, z_2[:4], 4)


def _samples(num: int) -> list[dict]:
    image = Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype("uint8"))
    views = WithOriginal(SimCLRViews(32, blur_prob=0.0))
    return [{"views": views(image), "label": 0, "key": f"k{i}"} for i in range(num)]


def test_collator_shares_one_augmentation_per_group() -> None:
    samples = _samples(8)  # one image eight times: rows of a group must come out identical
    batch = SharedAugmentCollator(group_size=4, seed=1)(samples)
    assert len(batch["views"]) == 2 and batch["shared_group_size"] == 4
    for view in batch["views_shared"]:
        assert view.shape == (8, 3, 32, 32)
        assert torch.equal(view[:4], view[0].expand(4, -1, -1, -1))
        assert torch.equal(view[4:], view[4].expand(4, -1, -1, -1))
        assert not torch.equal(view[0], view[4])
    assert not torch.equal(batch["views_shared"][0], batch["views_shared"][1])
    again = SharedAugmentCollator(group_size=4, seed=1)(_samples(8))
    assert all(torch.equal(a, b) for a, b in zip(batch["views_shared"], again["views_shared"]))
    with pytest.raises(ValueError, match="multiple of group_size"):
        SharedAugmentCollator(group_size=3)(_samples(8))


def test_two_step_fit(fit_steps) -> None:
    torch.manual_seed(0)
    model = CARE(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, proj_hidden_dim=64, proj_output_dim=32,
                 equivariance_weight=0.1, warmup_epochs=0)
    before = [p.detach().clone() for p in model.backbone.parameters()]
    views = WithOriginal(SimCLRViews(input_size=32, blur_prob=0.0))
    trainer = fit_steps(model, views, collate_fn=SharedAugmentCollator(group_size=4, blur_prob=0.0), steps=2)
    assert trainer.global_step == 2
    for key in ("train/loss", "train/equivariance_loss"):
        assert math.isfinite(float(trainer.callback_metrics[key]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))
