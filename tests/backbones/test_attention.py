"""Fused attention equals the naive reference; local attention equals dense attention + explicit mask."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask

from sslkit.backbones import Attention, attend, create_backbone, reference_attention
from sslkit.backbones.masks import make_mask_mod

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


def _naive_module_forward(attn: Attention, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    B, N, C = x.shape
    q, k, v = attn.qkv(x).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    out = reference_attention(q, k, v, mask).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out)


@pytest.mark.parametrize("with_mask", [False, True])
def test_attention_matches_naive_forward_and_grads(with_mask: bool) -> None:
    torch.manual_seed(0)
    attn = Attention(64, num_heads=4, qkv_bias=True)
    x = torch.randn(2, 37, 64, requires_grad=True)
    mask = torch.rand(2, 1, 37, 37) > 0.3 if with_mask else None
    if mask is not None:
        mask |= torch.eye(37, dtype=torch.bool)  # no fully masked rows
    out = attn(x, attn_mask=mask)
    grads = torch.autograd.grad(out.square().sum(), [x, *attn.parameters()])
    ref = _naive_module_forward(attn, x, mask)
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *attn.parameters()])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4)


def _explicit_neighborhood_mask(grid: tuple[int, int], window: tuple[int, int], num_prefix: int) -> torch.Tensor:
    # NATTEN's definition, written independently: the window starts at y - wh//2, shifted inside the grid.
    (H, W), (wh, ww) = grid, window
    L = num_prefix + H * W
    mask = torch.zeros(L, L, dtype=torch.bool)
    mask[:num_prefix, :] = mask[:, :num_prefix] = True
    for y in range(H):
        for x in range(W):
            y0, x0 = min(max(y - wh // 2, 0), H - wh), min(max(x - ww // 2, 0), W - ww)
            for ky in range(y0, y0 + wh):
                for kx in range(x0, x0 + ww):
                    mask[num_prefix + y * W + x, num_prefix + ky * W + kx] = True
    return mask


def test_local_attention_block_mask_equals_explicit_dense_mask() -> None:
    grid, window = (6, 5), (3, 3)
    pos = torch.cat([torch.full((1, 2), -1), torch.arange(30).unsqueeze(0)], dim=1)  # 2 prefix tokens
    mask = _explicit_neighborhood_mask(grid, window, num_prefix=2)
    assert mask[2:, 2:].sum(1).eq(9).all()  # every query sees exactly wh*ww patches
    block_mask = create_block_mask(make_mask_mod(pos, grid, window), 1, None, 32, 32, "cpu", BLOCK_SIZE=8)
    q, k, v = torch.randn(3, 1, 2, 32, 16).unbind(0)
    torch.testing.assert_close(attend(q, k, v, block_mask), reference_attention(q, k, v, mask), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attend(q, k, v, mask), reference_attention(q, k, v, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attn_impl", ["sdpa", "flex"])
def test_local_vit_equals_dense_vit_with_explicit_mask(attn_impl: str) -> None:
    # 48px / patch 8 = 6x6 grid; block 0 local 3x3, block 1 global.
    model = create_backbone(
        "vit_tiny_patch16_224", img_size=48, patch_size=8, depth=2, reg_tokens=2,
        local_window=[(3, 3), None], attn_impl=attn_impl,
    ).eval()
    x = torch.randn(2, 3, 48, 48)
    mask = _explicit_neighborhood_mask((6, 6), (3, 3), num_prefix=3)
    with torch.no_grad():
        local = model.forward_features(x)
        tokens = model.norm_pre(model._pos_embed(model.patch_embed(x)))
        tokens = model.blocks[1](model.blocks[0](tokens, attn_mask=mask))
        dense = model.norm(tokens)
    torch.testing.assert_close(local, dense, atol=1e-5, rtol=1e-5)


def test_local_attention_with_variable_keep_equals_each_sample_alone() -> None:
    model = create_backbone(
        "vit_tiny_patch16_224", img_size=48, patch_size=8, depth=2, local_window=(3, 3), varlen="pack"
    ).eval()
    x, keep_lens = torch.randn(2, 3, 48, 48), torch.tensor([20, 11])
    keep = torch.stack([torch.randperm(36)[:20] for _ in range(2)])
    out = model.forward_features(x, keep=keep, keep_lens=keep_lens)
    for b, n in enumerate(keep_lens.tolist()):
        alone = model.forward_features(x[b : b + 1], keep=keep[b : b + 1, :n])
        torch.testing.assert_close(out[b : b + 1, : 1 + n], alone, atol=1e-5, rtol=1e-5)


def test_even_window_is_rejected() -> None:
    model = create_backbone("vit_tiny_patch16_224", img_size=48, patch_size=8, depth=1, local_window=(2, 3))
    with pytest.raises(ValueError):
        model.forward_features(torch.randn(1, 3, 48, 48))


@pytest.mark.gpu
def test_bf16_flash_and_flex_on_cuda() -> None:
    model = create_backbone("vit_small_patch16_224", depth=2, local_window=[(7, 7), None]).cuda()
    x = torch.randn(4, 3, 224, 224, device="cuda")
    keep, keep_lens = torch.randint(0, 196, (4, 80), device="cuda"), torch.tensor([80, 50, 64, 10], device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model.forward_features(x, keep=keep, keep_lens=keep_lens)
        out.float().square().mean().backward()
    assert out.shape == (4, 81, 384) and torch.isfinite(out).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.blocks.parameters())
