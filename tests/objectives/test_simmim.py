"""SimMIM: the loss against the authors' formulation, all tokens through the encoder, a two-step fit."""

from __future__ import annotations

import math

import pytest
import torch

from sslkit.losses.masked_pixels import masked_patch_pixels, simmim_loss
from sslkit.masking import SimMIMMaskCollator
from sslkit.objectives import SimMIM
from sslkit.transforms import MaskedImageViews
from tests.objectives.masked_helpers import TINY_VIT, block_token_counts, random_samples


def _authors_loss(x: torch.Tensor, x_rec: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """microsoft/SimMIM ``models/simmim.py`` ``SimMIM.forward``, written out: the patch mask
    upsampled to pixels, L1 summed over masked pixels, divided by their count and the channels."""
    in_chans = x.shape[1]
    mask = mask.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2).unsqueeze(1).contiguous()
    loss_recon = torch.nn.functional.l1_loss(x, x_rec, reduction="none")
    return (loss_recon * mask).sum() / (mask.sum() + 1e-5) / in_chans


def test_loss_matches_the_authors_code() -> None:
    torch.manual_seed(0)
    B, p, grid = 2, 4, 8
    x, x_rec = torch.randn(B, 3, 32, 32), torch.randn(B, 3, 32, 32)
    masked = torch.stack([torch.randperm(grid * grid)[:40].sort().values for _ in range(B)])
    mask = torch.zeros(B, grid * grid).scatter_(1, masked, 1.0).view(B, grid, grid)
    golden = _authors_loss(x, x_rec, mask, p)
    ours = simmim_loss(masked_patch_pixels(x_rec, masked, p), masked_patch_pixels(x, masked, p))
    assert torch.allclose(ours, golden, atol=1e-5)


def test_loss_invariants() -> None:
    p = torch.randn(2, 10, 48, requires_grad=True)
    t = masked_patch_pixels(torch.rand(2, 3, 32, 32), torch.randint(0, 64, (2, 10)), 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert math.isfinite(float(simmim_loss(p.bfloat16(), t.bfloat16())))
    simmim_loss(p, t).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="simmim_loss"):
        simmim_loss(p, t[:1])


def test_encoder_sees_every_token_with_mask_tokens() -> None:
    model = SimMIM(backbone_kwargs=TINY_VIT)
    batch = SimMIMMaskCollator(32, 4, mask_patch_size=8)(random_samples())
    counts = block_token_counts(model.backbone, lambda: model.training_step(batch, 0).backward())
    assert counts == [8 * (model.backbone.num_prefix_tokens + 64)]
    assert model.mask_token.grad is not None and model.mask_token.grad.abs().sum() > 0


def test_two_step_fit(fit_steps) -> None:
    torch.manual_seed(0)
    model = SimMIM(backbone_kwargs=TINY_VIT, warmup_epochs=0)
    before = [p.detach().clone() for p in model.backbone.parameters()]
    views = MaskedImageViews(input_size=32, min_scale=0.67, hflip_prob=0.5)
    trainer = fit_steps(model, views, collate_fn=SimMIMMaskCollator(32, 4, mask_patch_size=8), steps=2)
    assert trainer.global_step == 2
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))
