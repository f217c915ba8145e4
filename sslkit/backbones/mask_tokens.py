"""A ViT pass with a learned mask token in place of masked patch embeddings (SimMIM, iBOT, DINOv2)."""

from __future__ import annotations

from torch import Tensor, nn


def encode_with_mask_tokens(vit: nn.Module, x: Tensor, mask: Tensor, mask_token: Tensor) -> Tensor:
    """ViT tokens ``(B, P + N, D)`` with ``mask_token`` in place of the masked patch embeddings.

    The sslkit/timm ViT has no mask-token input, so this runs its stages in its own order (patch
    embedding, position embedding and prefix tokens, pre-norm, blocks, norm); all ``N`` patch tokens
    go through the blocks. Works for fixed-size and ``dynamic_img_size`` ViTs (then the patch
    embedding keeps its ``(B, H, W, D)`` grid for the position embedding).

    Args:
        vit: sslkit's ``VisionTransformer``.
        x: Images ``(B, C, H, W)``.
        mask: ``(B, N)`` bool, ``True`` where the patch is masked (row-major in the patch grid).
        mask_token: ``(1, 1, D)``.
    """
    tokens = vit.patch_embed(x)  # (B, N, D), or (B, H, W, D) with dynamic_img_size
    if mask.shape != (tokens.shape[0], tokens[0, ..., 0].numel()):
        raise ValueError(f"mask {tuple(mask.shape)} does not match {tokens[0, ..., 0].numel()} patches per image")
    w = mask.view(*tokens.shape[:-1], 1).to(tokens.dtype)
    tokens = tokens * (1.0 - w) + mask_token.to(tokens.dtype).view(1, *[1] * (tokens.ndim - 2), -1) * w
    tokens = vit.norm_pre(vit._pos_embed(tokens))  # (B, P + N, D)
    return vit.norm(vit.blocks(tokens))
