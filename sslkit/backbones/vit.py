"""sslkit's ViT: timm's ``VisionTransformer`` with token keeping, packing and local attention.

Same modules, parameters and state-dict keys as timm's class (it *is* a subclass), so weights move
both ways with plain ``load_state_dict``. What it adds:

- ``forward_features(x, keep, keep_lens)``: run only the kept patch tokens of each sample (masked
  objectives: I-JEPA context encoder, MAE encoder), with per-sample keep counts.
- ``varlen``: how per-sample keep counts run — ``"pad"`` (pad to the longest, mask padded keys) or
  ``"pack"`` (concatenate valid tokens into one sequence, block-diagonal attention).
- ``local_window``: 2-D neighbourhood attention per block (FlexAttention ``BlockMask`` on CUDA,
  dense-masked SDPA elsewhere).
- all attention through :func:`sslkit.backbones.attention.attend` (SDPA / FlexAttention).
- ``sincos_pos_embed``: a fixed (frozen) 2-D sine-cosine positional embedding, as in the MAE and
  I-JEPA authors' ViTs and lightly's masked ViT; timm's default is a learned one.
- ``grad_checkpointing`` and ``compile`` as constructor switches, so recipes can set them.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from lightly.models import utils as lightly_utils
from timm.models.vision_transformer import Block
from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer
from torch import Tensor, nn

from sslkit.backbones.attention import Attention, to_fused_attention
from sslkit.backbones.blocks import AttnImpl, VarLen, pad_positions, run_layout
from sslkit.backbones.masks import PREFIX, Window
LocalWindow = Union[None, tuple[int, int], Sequence[Optional[tuple[int, int]]]]

# Constructor switches that are sslkit's, not timm's: strip them to rebuild the model in plain timm.
SSLKIT_VIT_KWARGS = ("local_window", "varlen", "attn_impl", "sincos_pos_embed", "grad_checkpointing", "compile")

# Default variable-length strategy; chosen by bench/backbone.py (see docs/benchmarks.md).
DEFAULT_VARLEN: VarLen = "pack"


class VisionTransformer(TimmVisionTransformer):
    """timm ``VisionTransformer`` plus token keeping, variable-length batches and local attention.

    Token layout of :meth:`forward_features` (``P = num_prefix_tokens = class_token + reg_tokens``):
    ``[cls?, reg_1 … reg_R, patch tokens]``, i.e. timm's order. Without ``keep`` the patch tokens
    are all ``H*W`` grid positions in row-major order: ``(B, P + H*W, D)``. With ``keep`` ``(B, K)``
    they are the patches at ``keep[b, j]`` in that order: ``(B, P + K, D)``; with ``keep_lens``,
    slots ``P + j`` for ``j >= keep_lens[b]`` are padding and are returned as zeros.
    """

    def __init__(
        self,
        *args: Any,
        local_window: LocalWindow = None,
        varlen: VarLen = DEFAULT_VARLEN,
        attn_impl: AttnImpl = "auto",
        sincos_pos_embed: bool = False,
        grad_checkpointing: bool = False,
        compile: bool = False,
        **timm_kwargs: Any,
    ) -> None:
        """Build like timm's ``VisionTransformer(**timm_kwargs)``, then apply sslkit's switches.

        Args:
            local_window: Odd ``(h, w)`` patch neighbourhood for every block, a per-block list
                (``None`` entries = global attention), or ``None`` (all global).
            varlen: ``"pack"`` or ``"pad"`` for batches with per-sample ``keep_lens``.
            attn_impl: ``"flex"`` (FlexAttention ``BlockMask``), ``"sdpa"`` (dense masks), or
                ``"auto"``: flex on CUDA, SDPA on CPU (FlexAttention has no CPU backward).
            sincos_pos_embed: Replace the learned positional embedding by a frozen 2-D sine-cosine
                one (same parameter and key, so plain timm loads the weights), as the MAE, MoCo v3
                and I-JEPA authors do.
            grad_checkpointing: Recompute block activations in backward.
            compile: ``torch.compile`` each block in place (state-dict keys unchanged).
        """
        timm_kwargs.setdefault("attn_layer", Attention)
        super().__init__(*args, **timm_kwargs)
        self.configure(local_window, varlen, attn_impl, sincos_pos_embed, grad_checkpointing, compile)

    @classmethod
    def from_timm(cls, model: TimmVisionTransformer, **options: Any) -> "VisionTransformer":
        """Turn a timm ``VisionTransformer`` (e.g. from ``timm.create_model``) into ours, in place.

        The subclass adds no parameters, so re-classing the instance keeps every weight, the
        ``pretrained_cfg`` and timm's exact architecture for that model name.

        Args:
            model: A plain timm ``VisionTransformer`` whose blocks are timm ``Block``.
            **options: :meth:`configure` arguments.
        """
        if type(model) is not TimmVisionTransformer:
            raise TypeError(f"expected timm's VisionTransformer, got {type(model).__name__}")
        if not all(type(blk) is Block for blk in model.blocks):
            raise TypeError("only timm's pre-norm Block is supported")
        to_fused_attention(model)
        model.__class__ = cls
        model.configure(**options)
        return model  # type: ignore[return-value]

    def configure(
        self,
        local_window: LocalWindow = None,
        varlen: VarLen = DEFAULT_VARLEN,
        attn_impl: AttnImpl = "auto",
        sincos_pos_embed: bool = False,
        grad_checkpointing: bool = False,
        compile: bool = False,
    ) -> None:
        """Set sslkit's switches (see ``__init__``)."""
        depth = len(self.blocks)
        if local_window is None or (len(local_window) == 2 and all(isinstance(w, int) for w in local_window)):
            windows: list[Window] = [tuple(local_window) if local_window else None] * depth  # type: ignore[misc]
        else:
            windows = [tuple(w) if w is not None else None for w in local_window]  # type: ignore[misc]
        if len(windows) != depth:
            raise ValueError(f"local_window has {len(windows)} entries for {depth} blocks")
        if any(w is not None for w in windows) and not isinstance(self.patch_drop, nn.Identity):
            raise ValueError("local_window needs token positions; patch_drop_rate > 0 would scramble them")
        if varlen not in ("pad", "pack") or attn_impl not in ("auto", "sdpa", "flex"):
            raise ValueError(f"varlen={varlen!r} / attn_impl={attn_impl!r} not understood")
        self.local_windows = windows
        self.varlen = varlen
        self.attn_impl = attn_impl
        if sincos_pos_embed:
            if self.pos_embed is None:
                raise ValueError("sincos_pos_embed needs a positional embedding (timm pos_embed='learn')")
            prefix = 0 if self.no_embed_class else self.num_prefix_tokens
            lightly_utils.initialize_2d_sine_cosine_positional_embedding(self.pos_embed, num_prefix_tokens=prefix)
        self.set_grad_checkpointing(grad_checkpointing)
        if compile:
            for blk in self.blocks:
                blk.compile()

    def forward_features(
        self,
        x: Tensor,
        keep: Optional[Tensor] = None,
        keep_lens: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        is_causal: bool = False,
    ) -> Tensor:
        """Tokens for all patches, or for the kept patches only.

        Positional embeddings are added before gathering, so kept tokens carry their positions;
        the blocks see only the kept tokens (plus prefix tokens).

        Args:
            x: Images ``(B, C, H, W)``.
            keep: ``(B, K)`` patch indices (row-major in the patch grid) to keep, or ``None``.
            keep_lens: ``(B,)`` number of valid entries per row of ``keep`` (the rest is padding
                and must still be valid indices, e.g. ``0``); ``None`` = all ``K`` valid.
            attn_mask, is_causal: timm's arguments, for the full sequence only.

        Returns:
            ``(B, P + K, D)`` with ``keep``, else ``(B, P + H*W, D)`` (layout in the class docstring).
        """
        if attn_mask is not None or is_causal:
            if keep is not None:
                raise ValueError("attn_mask/is_causal cannot be combined with keep")
            return super().forward_features(x, attn_mask=attn_mask, is_causal=is_causal)
        x = self.patch_embed(x)
        grid = tuple(x.shape[1:3]) if self.dynamic_img_size else tuple(self.patch_embed.grid_size)
        x = self._pos_embed(x)  # (B, P + H*W, D)
        if keep is None:
            x = self.patch_drop(x)
        else:
            x = self._gather_kept(x, keep)  # (B, P + K, D)
        x = self.norm_pre(x)

        pos = None
        if keep_lens is not None or any(w is not None for w in self.local_windows):
            pos = self._token_positions(x, keep, keep_lens)
        return run_layout(
            self.blocks, self.norm, x, pos, self.varlen, self.attn_impl, self.local_windows, grid,
            self.grad_checkpointing,
        )

    def _gather_kept(self, x: Tensor, keep: Tensor) -> Tensor:
        P = self.num_prefix_tokens
        patches = x[:, P:].gather(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return torch.cat([x[:, :P], patches], dim=1)

    def _token_positions(self, x: Tensor, keep: Optional[Tensor], keep_lens: Optional[Tensor]) -> Tensor:
        # (B, L) patch index per slot; PREFIX for cls/register tokens, PAD for padding.
        B, L, _ = x.shape
        P = self.num_prefix_tokens
        patches = keep if keep is not None else torch.arange(L - P, device=x.device).expand(B, -1)
        prefix = torch.full((B, P), PREFIX, dtype=torch.long, device=x.device)
        return torch.cat([prefix, pad_positions(patches, keep_lens)], dim=1)
