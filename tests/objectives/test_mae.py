"""MAE: the loss against the authors' formulation, token keeping, worker-side masks, a two-step fit."""

from __future__ import annotations

import math

import pytest
import torch

from sslkit.losses.masked_pixels import mae_loss, masked_patch_pixels
from sslkit.masking import RandomMaskCollator
from sslkit.objectives import MAE, load_objective
from sslkit.transforms import MaskedImageViews
from tests.objectives.masked_helpers import TINY_VIT, block_token_counts, random_samples, worker_batches


def _model(**kwargs) -> MAE:
    return MAE(backbone_kwargs=TINY_VIT, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4,
               warmup_epochs=0, **kwargs)


def _authors_loss(imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, p: int) -> torch.Tensor:
    """facebookresearch/mae ``models_mae.py`` ``patchify`` + ``forward_loss`` (norm_pix_loss=True),
    written out: predictions for every patch, a 0/1 mask with 1 = removed."""
    N, C, H, W = imgs.shape
    h = w = H // p
    x = imgs.reshape(N, C, h, p, w, p)
    x = torch.einsum("nchpwq->nhwpqc", x).reshape(N, h * w, p * p * C)
    mean, var = x.mean(dim=-1, keepdim=True), x.var(dim=-1, keepdim=True)
    target = (x - mean) / (var + 1.0e-6) ** 0.5
    loss = ((pred - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum()


def test_loss_matches_the_authors_code() -> None:
    torch.manual_seed(0)
    B, p, N = 3, 4, 64
    imgs, pred = torch.randn(B, 3, 32, 32), torch.randn(B, N, p * p * 3)
    masked = torch.stack([torch.randperm(N)[:48] for _ in range(B)])
    mask = torch.zeros(B, N).scatter_(1, masked, 1.0)
    golden = _authors_loss(imgs, pred, mask, p)
    p_masked = pred.gather(1, masked.unsqueeze(-1).expand(-1, -1, pred.shape[-1]))
    assert torch.allclose(mae_loss(p_masked, masked_patch_pixels(imgs, masked, p)), golden, atol=1e-5)


def test_loss_invariants() -> None:
    p = torch.randn(2, 10, 48, requires_grad=True)
    t = masked_patch_pixels(torch.rand(2, 3, 32, 32), torch.randint(0, 64, (2, 10)), 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert math.isfinite(float(mae_loss(p.bfloat16(), t.bfloat16())))
    mae_loss(p, t).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mae_loss"):
        mae_loss(p[:, :5], t)
    with pytest.raises(ValueError, match="targets"):
        masked_patch_pixels(torch.rand(2, 3, 32, 32), torch.zeros(2, 2, 2, dtype=torch.long), 4)


def test_encoder_sees_only_visible_tokens() -> None:
    model = _model()
    batch = RandomMaskCollator(32, 4, mask_ratio=0.75)(random_samples())
    counts = block_token_counts(model.backbone, lambda: model.training_step(batch, 0))
    assert counts == [8 * (model.backbone.num_prefix_tokens + 16)]  # 16 of 64 patches, plus the cls token


def test_masks_are_made_in_workers_reproducibly(digit_shards) -> None:
    views = MaskedImageViews(input_size=32, min_scale=0.2, hflip_prob=0.5)
    first = worker_batches(digit_shards, views, RandomMaskCollator(32, 4, seed=5))
    again = worker_batches(digit_shards, views, RandomMaskCollator(32, 4, seed=5))
    assert {int(b["mask_worker"]) for b in first} == {0, 1}
    for a, b in zip(first, again):
        assert torch.equal(a["masks_context"], b["masks_context"]) and torch.equal(a["masks_target"], b["masks_target"])


def test_two_step_fit_and_safe_reload(fit_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = _model()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    views = MaskedImageViews(input_size=32, min_scale=0.2, hflip_prob=0.5)
    trainer = fit_steps(model, views, collate_fn=RandomMaskCollator(32, 4), steps=2)
    assert trainer.global_step == 2
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))
    trainer.save_checkpoint(tmp_path / "mae.ckpt")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(load_objective(tmp_path / "mae.ckpt")(x), model.eval()(x))
