"""Layer-wise learning-rate decay (BEiT, Bao et al., 2022; DINOv2's ``get_vit_lr_decay_rate``)."""

from __future__ import annotations

from typing import Any

from torch import nn

_EMBEDDING_NAMES = ("cls_token", "reg_token", "pos_embed", "patch_embed", "mask_token")


def vit_layer_id(name: str, depth: int) -> int:
    """Layer of a ViT parameter: 0 for embeddings and tokens, ``i + 1`` for ``blocks.i``, ``depth + 1`` after."""
    if name.startswith(_EMBEDDING_NAMES):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def layer_decay_groups(groups: list[dict[str, Any]], vit: nn.Module, decay: float, lr: float,
                       extra_embeddings: tuple[nn.Parameter, ...] = ()) -> list[dict[str, Any]]:
    """Split parameter groups by ViT layer, each with ``lr * decay ** (depth + 1 - layer)``.

    Parameters outside ``vit`` (heads) keep ``lr``; ``extra_embeddings`` (a mask token the objective
    owns) get the embedding layer's rate, as in DINOv2.

    Args:
        groups: Groups from :func:`sslkit.optim.param_groups` (weight-decay split kept).
        vit: The backbone (``blocks``, ``depth`` = ``len(blocks)``).
        decay: Per-layer factor (DINOv2: 0.9 for ViT-L; 1.0 leaves every rate at ``lr``).
        lr: The peak learning rate.
    """
    depth = len(vit.blocks)
    layer_of = {id(p): vit_layer_id(n, depth) for n, p in vit.named_parameters()}
    layer_of.update({id(p): 0 for p in extra_embeddings})
    out: list[dict[str, Any]] = []
    for group in groups:
        by_layer: dict[int, list[nn.Parameter]] = {}
        for p in group["params"]:
            by_layer.setdefault(layer_of.get(id(p), depth + 1), []).append(p)
        for layer, params in sorted(by_layer.items()):
            scale = decay ** (depth + 1 - layer)
            out.append({**group, "params": params, "lr": lr * scale, "lr_scale": scale,
                        "name": f"{group.get('name', 'group')}/layer{layer}"})
    return out
