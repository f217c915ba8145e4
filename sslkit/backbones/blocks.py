"""Running a stack of transformer blocks over a token layout (all tokens, padded, or packed).

Shared by the ViT encoder, the I-JEPA predictor and the MAE decoder so that variable-length
batches and local attention behave the same everywhere.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Literal, Optional, Sequence

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sslkit.backbones.attention import Attention
from sslkit.backbones.masks import PAD, AttnMask, Window, build_masks

VarLen = Literal["pad", "pack"]
AttnImpl = Literal["auto", "sdpa", "flex"]


def make_blocks(
    dim: int,
    depth: int,
    num_heads: int,
    mlp_ratio: float = 4.0,
    qkv_bias: bool = True,
    drop_path_rate: float = 0.0,
    norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
) -> nn.Sequential:
    """timm pre-norm ``Block`` s with :class:`~sslkit.backbones.attention.Attention` (fused only)."""
    dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # plain floats, also under a meta device
    return nn.Sequential(
        *[
            Block(dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i], norm_layer=norm_layer, attn_layer=Attention)
            for i in range(depth)
        ]
    )


def run_blocks(blocks: nn.Sequential, x: Tensor, masks: Sequence[AttnMask], grad_checkpointing: bool = False) -> Tensor:
    """Apply ``blocks`` to ``x`` ``(B, L, D)``, block ``i`` with ``masks[i]``."""
    use_ckpt = grad_checkpointing and torch.is_grad_enabled()
    if not use_ckpt and all(m is None for m in masks):
        return blocks(x)
    for blk, mask in zip(blocks, masks):
        x = checkpoint(blk, x, mask, use_reentrant=False) if use_ckpt else blk(x, mask)
    return x


def run_layout(
    blocks: nn.Sequential,
    norm: nn.Module,
    x: Tensor,
    pos: Optional[Tensor],
    varlen: VarLen,
    attn_impl: AttnImpl = "auto",
    windows: Optional[Sequence[Window]] = None,
    grid: tuple[int, int] = (1, 1),
    grad_checkpointing: bool = False,
) -> Tensor:
    """``norm(blocks(x))`` for tokens ``(B, L, D)`` laid out as ``pos`` (see :mod:`.masks`).

    Padding slots (``pos == PAD``) never reach the blocks with ``varlen="pack"`` and are masked as
    keys with ``"pad"``; they come back as zeros either way. ``pos=None`` means all tokens are
    valid and every block attends globally (the unmasked fast path).

    Returns:
        ``(B, L, D)``.
    """
    windows = list(windows) if windows is not None else [None] * len(blocks)
    if pos is None:
        if any(w is not None for w in windows):
            raise ValueError("local windows need token positions")
        return norm(run_blocks(blocks, x, [None] * len(blocks), grad_checkpointing))
    impl = attn_impl if attn_impl != "auto" else ("flex" if x.is_cuda else "sdpa")
    masks, packed = build_masks(pos, grid, windows, varlen, impl)
    if packed is None:
        x = norm(run_blocks(blocks, x, masks, grad_checkpointing))
        return x * (pos != PAD).unsqueeze(-1)  # padding rows carry no information: zero them
    tokens = norm(run_blocks(blocks, x[packed].unsqueeze(0), masks, grad_checkpointing))  # (1, T, D)
    out = tokens.new_zeros(*packed.shape, tokens.shape[-1])
    out[packed] = tokens[0]
    return out


def pad_positions(idx: Tensor, lens: Optional[Tensor]) -> Tensor:
    """``idx`` ``(B, K)`` with entries ``j >= lens[b]`` replaced by :data:`PAD`."""
    if lens is None:
        return idx.long()
    j = torch.arange(idx.shape[1], device=idx.device)
    return idx.long().masked_fill(j >= lens.unsqueeze(1), PAD)
