"""Multi-head self-attention through fused kernels only.

Every attention in :mod:`sslkit.backbones` goes through :func:`attend`, which dispatches on the mask
type: ``None`` or a dense ``Tensor`` → :func:`torch.nn.functional.scaled_dot_product_attention`
(flash / memory-efficient / CPU-flash kernels), a FlexAttention ``BlockMask`` →
:func:`torch.nn.attention.flex_attention.flex_attention` (block-sparse; compiled on CUDA).
:func:`reference_attention` is the naive softmax(QKᵀ)V used only by tests and benchmarks.

FlexAttention on CPU (torch 2.15, measured 2025-11): forward only — backward raises
``NotImplementedError`` — eager mode materialises the full score matrix, and ``torch.compile`` of the
kernel costs ~25 s per shape. :mod:`sslkit.backbones.masks` therefore builds dense SDPA masks on CPU
and ``BlockMask`` on CUDA unless told otherwise.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from timm.layers import Attention as TimmAttention
from torch import Tensor
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from sslkit.backbones.masks import AttnMask, PackedMask


@functools.cache
def _compiled_flex_attention() -> Callable[..., Tensor]:
    # Compiled once per process; without compile FlexAttention materialises the scores. Default
    # dynamic-shape handling: packed lengths change every step, so after the first recompile the
    # kernel is traced with a symbolic length instead of once per length.
    return torch.compile(flex_attention)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: AttnMask = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> Tensor:
    """Fused attention for ``q, k, v`` of shape ``(B, H, L, d)``.

    Args:
        q, k, v: Queries, keys, values ``(B, H, L, d)``.
        attn_mask: ``None``; a bool/float ``Tensor`` broadcastable to ``(B, H, L, L)`` (``True`` =
            attend) for SDPA; a FlexAttention ``BlockMask``; or a :class:`PackedMask` (then
            ``B == 1`` and ``L`` is the packed length ``T``).
        dropout_p: Attention dropout (SDPA only; FlexAttention has none).
        is_causal: Causal masking (SDPA only).

    Returns:
        ``(B, H, L, d)``.
    """
    if isinstance(attn_mask, BlockMask):
        if dropout_p > 0.0:
            raise ValueError("attention dropout is not supported with a FlexAttention BlockMask")
        fn = _compiled_flex_attention() if q.is_cuda else flex_attention
        return fn(q, k, v, block_mask=attn_mask)
    if isinstance(attn_mask, PackedMask):
        return _attend_packed(q, k, v, attn_mask, dropout_p)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal
    )


def _attend_packed(q: Tensor, k: Tensor, v: Tensor, packed: PackedMask, dropout_p: float) -> Tensor:
    # (1, H, T, d) -> zero-padded (B, H, L_max, d) -> SDPA -> (1, H, T, d)
    _, H, T, d = q.shape
    B, L = packed.batch_size, packed.max_len

    def unpack(t: Tensor) -> Tensor:
        slots = t.new_zeros(B * L, H, d).index_copy(0, packed.index, t[0].transpose(0, 1))
        return slots.view(B, L, H, d).transpose(1, 2)

    out = F.scaled_dot_product_attention(unpack(q), unpack(k), unpack(v), attn_mask=packed.mask, dropout_p=dropout_p)
    return out.transpose(1, 2).reshape(B * L, H, d)[packed.index].transpose(0, 1).unsqueeze(0)


def reference_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
    """Naive softmax(QKᵀ/√d)V, materialising the scores. Reference for tests and benchmarks only.

    Args:
        q, k, v: ``(B, H, L, d)``.
        attn_mask: Optional bool mask broadcastable to ``(B, H, L, L)``, ``True`` = attend.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, L, L)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


class Attention(TimmAttention):
    """timm's ``Attention`` (same parameters and state-dict keys) with a fused-only forward.

    Accepts a FlexAttention ``BlockMask`` as ``attn_mask`` in addition to dense masks, so a block can
    run local (neighbourhood) or packed variable-length attention without code changes in timm's
    ``Block``.
    """

    def forward(self, x: Tensor, attn_mask: AttnMask = None, is_causal: bool = False) -> Tensor:
        B, N, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, H, N, d) each
        q, k = self.q_norm(q), self.k_norm(k)
        dropout_p = self.attn_drop.p if self.training else 0.0
        x = attend(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal)
        x = x.transpose(1, 2).reshape(B, N, self.attn_dim)
        x = self.norm(x)
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))


def to_fused_attention(module: Any) -> None:
    """Switch every timm ``Attention`` inside ``module`` to :class:`Attention`, in place.

    The classes share ``__init__`` and parameters, so only the forward changes; state dicts are
    untouched. Other attention types (e.g. ``DiffAttention``) are rejected rather than left naive.
    """
    for name, sub in module.named_modules():
        if type(sub) is TimmAttention:
            sub.__class__ = Attention
        elif name.endswith(".attn") and not isinstance(sub, Attention):
            raise TypeError(f"{name}: {type(sub).__name__} is not supported; use timm's Attention")
