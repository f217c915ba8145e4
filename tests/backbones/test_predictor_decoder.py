"""I-JEPA predictor and MAE decoder: golden values from lightly, variable-length equivalence."""

from __future__ import annotations

import pytest
import torch
from lightly.models.modules.ijepa_timm import IJEPAPredictorTIMM

from sslkit.backbones.attention import Attention
from sslkit.backbones.decoder import MAEDecoder
from sslkit.backbones.predictor import IJEPAPredictor


def _predictor(varlen: str = "pack") -> IJEPAPredictor:
    torch.manual_seed(0)
    return IJEPAPredictor(num_patches=16, embed_dim=32, predictor_embed_dim=24, depth=2, num_heads=2, varlen=varlen)


def test_predictor_matches_lightly_ijepa_predictor() -> None:
    ours = _predictor().eval()
    ref = IJEPAPredictorTIMM(num_patches=16, depth=2, mlp_dim=32, predictor_embed_dim=24, num_heads=2).eval()
    renamed = {
        ("decoder." + k if k.split(".")[0] in ("mask_token", "pos_embed", "blocks", "norm") else k): v
        for k, v in ours.state_dict().items()
    }
    ref.load_state_dict(renamed, strict=True)
    assert all(isinstance(blk.attn, Attention) for blk in ours.blocks)
    z = torch.randn(3, 6, 32)
    context = torch.stack([torch.randperm(16)[:6] for _ in range(3)])
    targets = torch.stack([torch.randperm(16)[:4] for _ in range(3)])
    torch.testing.assert_close(ours(z, context, targets), ref(z.clone(), context, targets), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("varlen", ["pack", "pad"])
def test_predictor_variable_lengths_equal_each_sample_alone(varlen: str) -> None:
    model = _predictor(varlen).eval()
    z, context, targets = torch.randn(3, 6, 32), torch.randint(0, 16, (3, 6)), torch.randint(0, 16, (3, 4))
    context_lens, target_lens = torch.tensor([6, 2, 4]), torch.tensor([4, 4, 1])
    p = model(z, context, targets, context_lens, target_lens)
    assert p.shape == (3, 4, 32)
    for b in range(3):
        nc, nt = int(context_lens[b]), int(target_lens[b])
        alone = model(z[b : b + 1, :nc], context[b : b + 1, :nc], targets[b : b + 1, :nt])
        torch.testing.assert_close(p[b : b + 1, :nt], alone, atol=1e-5, rtol=1e-5)


def test_predictor_multiple_target_blocks_equal_repeated_context() -> None:
    model = _predictor().eval()
    z, context, targets = torch.randn(2, 5, 32), torch.randint(0, 16, (2, 5)), torch.randint(0, 16, (3 * 2, 4))
    stacked = model(z, context, targets)  # 3 blocks per image, image-major
    repeated = model(z.repeat_interleave(3, 0), context.repeat_interleave(3, 0), targets)
    assert stacked.shape == (6, 4, 32)
    torch.testing.assert_close(stacked, repeated, atol=1e-5, rtol=1e-5)


def test_predictor_gradients_reach_context() -> None:
    model = _predictor()
    z = torch.randn(2, 5, 32, requires_grad=True)
    model(z, torch.randint(0, 16, (2, 5)), torch.randint(0, 16, (2, 3))).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert model.pos_embed.grad is None  # fixed sin-cos


def test_mae_decoder_shapes_and_variable_keep() -> None:
    torch.manual_seed(0)
    decoder = MAEDecoder(num_patches=16, patch_size=4, embed_dim=32, decoder_embed_dim=24, depth=2, num_heads=2,
                         num_prefix_tokens=2).eval()
    assert all(isinstance(blk.attn, Attention) for blk in decoder.blocks)
    feats, keep = torch.randn(2, 2 + 5, 32), torch.stack([torch.randperm(16)[:5] for _ in range(2)])
    assert decoder(feats, keep).shape == (2, 16, 4 * 4 * 3)
    targets = torch.randint(0, 16, (2, 7))
    p = decoder(feats, keep, keep_lens=torch.tensor([5, 3]), targets=targets)
    assert p.shape == (2, 7, 48)
    alone = decoder(feats[1:, : 2 + 3], keep[1:, :3], targets=targets[1:])
    torch.testing.assert_close(p[1:], alone, atol=1e-5, rtol=1e-5)
