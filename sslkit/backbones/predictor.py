"""I-JEPA predictor (Assran et al., 2023, "Self-Supervised Learning from Images with a
Joint-Embedding Predictive Architecture"): a narrow ViT that predicts target-block embeddings from
context-block embeddings.

Follows ``src/models/vision_transformer.py::VisionTransformerPredictor`` of facebookresearch/ijepa
and lightly's ``IJEPAPredictorTIMM``: linear in → add the (fixed 2-D sin-cos) position embedding
to the context tokens → append mask tokens + position embedding at the target positions → blocks →
norm → linear out. Unlike both, per-sample context/target counts may differ (``*_lens``) and run
packed or padded like the encoder, and attention goes through SDPA.
"""

from __future__ import annotations

from typing import Optional

import torch
from lightly.models import utils as lightly_utils
from torch import Tensor, nn

from sslkit.backbones.blocks import VarLen, make_blocks, pad_positions, run_layout
from sslkit.backbones.vit import DEFAULT_VARLEN


class IJEPAPredictor(nn.Module):
    """Predicts target-token embeddings from context tokens.

    Args:
        num_patches: Patches of the (square) encoder grid.
        embed_dim: Encoder width (input and output width).
        predictor_embed_dim: Predictor width (I-JEPA: 384 for ViT-H).
        depth: Predictor blocks (I-JEPA: 12 for ViT-H, 6 in lightly's example).
        num_heads: Attention heads.
        mlp_ratio, qkv_bias, drop_path_rate: As in timm's ``Block``.
        varlen: ``"pack"`` / ``"pad"`` for per-sample context/target counts.
        grad_checkpointing: Recompute block activations in backward.
    """

    def __init__(
        self,
        num_patches: int,
        embed_dim: int,
        predictor_embed_dim: int = 384,
        depth: int = 6,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        varlen: VarLen = DEFAULT_VARLEN,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.varlen = varlen
        self.grad_checkpointing = grad_checkpointing
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, predictor_embed_dim), requires_grad=False)
        lightly_utils.initialize_2d_sine_cosine_positional_embedding(self.pos_embed, num_prefix_tokens=0)
        self.blocks = make_blocks(predictor_embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate)
        self.norm = nn.LayerNorm(predictor_embed_dim, eps=1e-6)
        self.predictor_proj = nn.Linear(predictor_embed_dim, embed_dim)
        self.apply(_init_linear)  # I-JEPA's trunc-normal(0.02) init; mask token stays zero

    def forward(
        self,
        z_context: Tensor,
        context: Tensor,
        targets: Tensor,
        context_lens: Optional[Tensor] = None,
        target_lens: Optional[Tensor] = None,
    ) -> Tensor:
        """Predict the embeddings of ``targets`` from context tokens.

        Several target blocks per image (I-JEPA's M=4) are stacked image-major along the batch of
        ``targets`` (``(B * M, Kt)``, i.e. ``masks_target.flatten(0, 1)`` of a ``(B, M, Kt)``
        collator output); the context is given once and repeated after the input projection (each
        row of ``targets`` is predicted from its own copy of the context, as in I-JEPA). Passing
        an already repeated context (``M == 1``) gives the same result at a higher cost.

        Args:
            z_context: Encoder patch tokens at ``context`` positions ``(B, Kc, D)`` (no prefix
                tokens: pass ``feats[:, num_prefix_tokens:]``).
            context: ``(B, Kc)`` patch indices of the context tokens.
            targets: ``(B * M, Kt)`` patch indices to predict.
            context_lens: ``(B,)`` valid entries per row of ``context`` (rest is padding), or ``None``.
            target_lens: ``(B * M,)`` valid entries per row of ``targets``, or ``None``.

        Returns:
            ``p``: ``(B * M, Kt, D)`` predicted embeddings; rows beyond ``target_lens`` are zero.
        """
        B, Kc, _ = z_context.shape
        M = targets.shape[0] // B
        if targets.shape[0] != M * B:
            raise ValueError(f"targets has {targets.shape[0]} rows, not a multiple of the batch {B}")
        pos_embed = self.pos_embed.expand(B, -1, -1)
        x = self.predictor_embed(z_context) + _gather(pos_embed, context)  # (B, Kc, Dp)
        x, context = x.repeat_interleave(M, 0), context.repeat_interleave(M, 0)  # (B * M, Kc, Dp)
        context_lens = context_lens.repeat_interleave(M, 0) if context_lens is not None else None
        t = self.mask_token + _gather(self.pos_embed.expand(M * B, -1, -1), targets)  # (B * M, Kt, Dp)
        x = torch.cat([x, t.to(x.dtype)], dim=1)
        pos = None
        if context_lens is not None or target_lens is not None:
            pos = torch.cat([pad_positions(context, context_lens), pad_positions(targets, target_lens)], dim=1)
        x = run_layout(self.blocks, self.norm, x, pos, self.varlen, grad_checkpointing=self.grad_checkpointing)
        return self.predictor_proj(x[:, Kc:])


def _gather(x: Tensor, idx: Tensor) -> Tensor:
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
