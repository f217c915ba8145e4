"""MAE decoder (He et al., 2022, "Masked Autoencoders Are Scalable Vision Learners").

Follows facebookresearch/mae ``models_mae.py`` and lightly's ``MAEDecoderTIMM``: linear embed of the
encoder's kept tokens → mask tokens at the dropped positions → fixed 2-D sin-cos position embedding →
blocks → norm → per-patch pixel head. Attention goes through SDPA. The decoder always runs the full
``P + N`` sequence, so per-sample keep counts need no padding here.
"""

from __future__ import annotations

from typing import Optional

import torch
from lightly.models import utils as lightly_utils
from torch import Tensor, nn

from sslkit.backbones.blocks import make_blocks, pad_positions, run_layout
from sslkit.backbones.masks import PAD


class MAEDecoder(nn.Module):
    """Reconstructs patch pixels from the encoder's kept tokens.

    Args:
        num_patches: Patches of the (square) encoder grid ``N``.
        patch_size: Encoder patch size; the head predicts ``patch_size**2 * in_chans`` values.
        embed_dim: Encoder width.
        decoder_embed_dim, depth, num_heads: Decoder width / blocks / heads (MAE: 512, 8, 16).
        num_prefix_tokens: Encoder prefix tokens (class + registers) that precede the patches.
        in_chans: Image channels.
        mlp_ratio: As in timm's ``Block``.
        grad_checkpointing: Recompute block activations in backward.
    """

    def __init__(
        self,
        num_patches: int,
        patch_size: int,
        embed_dim: int,
        decoder_embed_dim: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        num_prefix_tokens: int = 1,
        in_chans: int = 3,
        mlp_ratio: float = 4.0,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.num_patches = num_patches
        self.num_prefix_tokens = num_prefix_tokens
        self.grad_checkpointing = grad_checkpointing
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_prefix_tokens + num_patches, decoder_embed_dim), requires_grad=False
        )
        lightly_utils.initialize_2d_sine_cosine_positional_embedding(self.pos_embed, num_prefix_tokens=num_prefix_tokens)
        self.blocks = make_blocks(decoder_embed_dim, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(_init_xavier)

    def forward(
        self,
        feats: Tensor,
        keep: Tensor,
        keep_lens: Optional[Tensor] = None,
        targets: Optional[Tensor] = None,
    ) -> Tensor:
        """Predict pixels of every patch, or of ``targets`` only.

        Args:
            feats: Encoder output ``(B, P + K, D)`` (``VisionTransformer.forward_features(x, keep)``).
            keep: ``(B, K)`` patch indices the encoder kept.
            keep_lens: ``(B,)`` valid entries per row of ``keep``, or ``None``.
            targets: ``(B, M)`` patch indices to predict (MAE: the masked ones), or ``None`` = all.

        Returns:
            ``p``: ``(B, M or N, patch_size**2 * in_chans)`` pixel predictions, in the patch order of
            ``lightly.models.utils.patchify``.
        """
        B, P = feats.shape[0], self.num_prefix_tokens
        z = self.decoder_embed(feats)  # (B, P + K, Dd)
        x = self.mask_token.to(z.dtype).expand(B, self.num_patches, -1).clone()
        kept = pad_positions(keep, keep_lens)
        rows, cols = (kept != PAD).nonzero(as_tuple=True)
        x[rows, kept[rows, cols]] = z[:, P:][rows, cols]  # kept tokens back at their positions
        x = torch.cat([z[:, :P], x], dim=1) + self.pos_embed
        x = run_layout(self.blocks, self.norm, x, None, "pad", grad_checkpointing=self.grad_checkpointing)
        x = x[:, P:]
        if targets is not None:
            x = x.gather(1, targets.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return self.decoder_pred(x)


def _init_xavier(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
