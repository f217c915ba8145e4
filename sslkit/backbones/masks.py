"""Attention masks for kept tokens, packed variable-length batches and 2-D neighbourhood attention.

One *mask_mod* (FlexAttention's ``(b, h, q_idx, kv_idx) -> bool``) describes each pattern; it is
either compiled into a block-sparse FlexAttention ``BlockMask`` or evaluated densely into an SDPA
bool mask, so both backends see the same mask by construction.

A token sequence is described by ``pos``: for every slot its patch index in the row-major
``(H, W)`` patch grid, :data:`PREFIX` for class/register tokens and :data:`PAD` for padding.
Prefix tokens are never masked: they attend to, and are attended by, every valid token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Union

import torch
from torch import Tensor
from torch.nn.attention.flex_attention import BlockMask, create_block_mask

PREFIX = -1
PAD = -2
Window = Optional[tuple[int, int]]
MaskMod = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class PackedMask:
    """Dense SDPA attention for a packed ``(1, T)`` sequence, run per sample in a padded layout.

    FlexAttention has no CPU backward, so on CPU packed tokens are scattered into a zero-padded
    ``(B, L_max)`` layout for the attention product only; projections and MLPs stay packed.

    Attributes:
        index: ``(T,)`` flat slot of each packed token in ``(B * L_max)``.
        batch_size: ``B``.
        max_len: ``L_max``.
        mask: Bool SDPA mask ``(B, 1, 1 | L_max, L_max)``, ``True`` = attend.
    """

    index: Tensor
    batch_size: int
    max_len: int
    mask: Tensor


AttnMask = Optional[Union[Tensor, BlockMask, PackedMask]]


def neighborhood(pos_q: Tensor, pos_k: Tensor, grid: tuple[int, int], window: tuple[int, int]) -> Tensor:
    """2-D neighbourhood attention pattern (Hassani et al., NAT; FlexAttention's NATTEN mask).

    A query at ``(y, x)`` attends to the ``wh × ww`` keys around it; near borders the window is
    shifted inside the grid (not truncated), so every query sees exactly ``wh * ww`` patch keys.
    """
    (gh, gw), (wh, ww) = grid, window
    qy, qx, ky, kx = pos_q // gw, pos_q % gw, pos_k // gw, pos_k % gw
    cy = qy.clamp(wh // 2, gh - 1 - wh // 2)
    cx = qx.clamp(ww // 2, gw - 1 - ww // 2)
    return ((cy - ky).abs() <= wh // 2) & ((cx - kx).abs() <= ww // 2)


def make_mask_mod(pos: Tensor, grid: tuple[int, int], window: Window, doc: Optional[Tensor] = None) -> MaskMod:
    """Mask over a token layout.

    Args:
        pos: ``(B, L)`` patch index / :data:`PREFIX` / :data:`PAD` per slot.
        grid: Patch grid ``(H, W)``.
        window: Odd ``(wh, ww)`` neighbourhood, or ``None`` for global attention.
        doc: For a packed layout (``B == 1``), ``(T,)`` sample id per token; tokens attend only
            within their own sample.
    """
    if window is not None and (window[0] % 2 == 0 or window[1] % 2 == 0):
        raise ValueError(f"local window must be odd, got {window}")

    def mask_mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        pq, pk = pos[b, q_idx], pos[b, kv_idx]
        ok = pk != PAD
        if doc is not None:
            ok = ok & (doc[q_idx] == doc[kv_idx])
        if window is not None:
            local = neighborhood(pq.clamp(min=0), pk.clamp(min=0), grid, window)
            ok = ok & (local | (pq == PREFIX) | (pk == PREFIX))
        return ok

    return mask_mod


def dense_mask(mask_mod: MaskMod, batch_size: int, seq_len: int, device: torch.device) -> Tensor:
    """Evaluate ``mask_mod`` into a bool SDPA mask ``(B, 1, L, L)``."""
    b = torch.arange(batch_size, device=device).view(-1, 1, 1, 1)
    idx = torch.arange(seq_len, device=device)
    h = torch.zeros(1, 1, 1, 1, dtype=torch.long, device=device)
    return mask_mod(b, h, idx.view(1, 1, -1, 1), idx.view(1, 1, 1, -1))


def _block_mask(mask_mod: MaskMod, batch_size: int, seq_len: int, device: torch.device) -> BlockMask:
    # On CUDA, compiling the mask construction avoids materialising the (L, L) mask (L = B * K
    # when packed); on CPU the eager path is cheaper than a compile.
    return create_block_mask(mask_mod, batch_size, None, seq_len, seq_len, device, _compile=device.type == "cuda")


def _clip_window(window: Window, grid: tuple[int, int]) -> Window:
    # A window covering the whole grid is global attention; the SDPA fast path handles that.
    if window is None or (window[0] >= grid[0] and window[1] >= grid[1]):
        return None
    return (min(window[0], grid[0] - 1 + grid[0] % 2), min(window[1], grid[1] - 1 + grid[1] % 2))


def build_masks(
    pos: Tensor,
    grid: tuple[int, int],
    windows: Sequence[Window],
    varlen: Literal["pad", "pack"],
    impl: Literal["sdpa", "flex"],
) -> tuple[list[AttnMask], Optional[Tensor]]:
    """Per-block attention masks for a (possibly padded) token layout, one build per distinct window.

    Args:
        pos: ``(B, L)`` layout (see module docstring).
        grid: Patch grid ``(H, W)``.
        windows: Per block, an odd local window or ``None`` (global).
        varlen: ``"pad"`` runs the ``(B, L)`` layout with padding masked out; ``"pack"`` runs the
            valid tokens only, as one ``(1, T)`` sequence.
        impl: ``"sdpa"`` (dense masks) or ``"flex"`` (``BlockMask``).

    Returns:
        The per-block masks and, for ``"pack"``, the ``(B, L)`` bool of valid slots used to pack.
    """
    B, L = pos.shape
    has_pad = bool((pos == PAD).any())
    windows = [_clip_window(w, grid) for w in windows]
    valid = pos != PAD if varlen == "pack" and has_pad else None
    cache: dict[Window, AttnMask] = {}
    for w in dict.fromkeys(windows):
        if w is None and not has_pad:
            cache[w] = None
        elif valid is not None and impl == "flex":
            doc = torch.arange(B, device=pos.device).unsqueeze(1).expand(B, L)[valid]
            packed_pos = pos[valid].unsqueeze(0)  # (1, T)
            T = packed_pos.shape[1]
            cache[w] = _block_mask(make_mask_mod(packed_pos, grid, w, doc), 1, T, pos.device)
        elif impl == "flex":
            cache[w] = _block_mask(make_mask_mod(pos, grid, w), B, L, pos.device)
        else:
            mask = (pos != PAD).view(B, 1, 1, L) if w is None else dense_mask(make_mask_mod(pos, grid, w), B, L, pos.device)
            if valid is not None:
                mask = PackedMask(valid.flatten().nonzero().squeeze(1), B, L, mask)
            cache[w] = mask
    return [cache[w] for w in windows], valid
