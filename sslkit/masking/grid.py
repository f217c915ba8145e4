"""The one place a mask collator and a ViT backbone must agree: image side and patch size.

A collator samples patch indices on an ``input_size // patch_size`` grid; the backbone embeds
``img_size // patch_size`` patches per side. A recipe states both, so they can disagree; the
indices would then address the wrong patches (or none). :func:`check_mask_grid` refuses that before
the first step (``SSLObjective.setup`` calls it with the data module's collator).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sslkit.errors import UserError


def check_mask_grid(collator: Any, backbone: nn.Module, where: str) -> None:
    """Raise a one-line :class:`UserError` if ``collator``'s image or patch size is not ``backbone``'s.

    Args:
        collator: A training collator; only mask collators (with ``input_size`` and ``patch_size``)
            are checked.
        backbone: The objective's backbone; only ViTs (with ``patch_embed``) are checked.
        where: Who is checking (the objective's name), for the message.
    """
    embed = getattr(backbone, "patch_embed", None)
    if embed is None or getattr(collator, "input_size", None) is None or getattr(collator, "patch_size", None) is None:
        return
    pairs = (("input_size", collator.input_size, "img_size", embed.img_size),
             ("patch_size", collator.patch_size, "patch_size", embed.patch_size))
    for collator_key, collator_value, backbone_key, backbone_value in pairs:
        side = _side(backbone_value)
        if side != collator_value:
            raise UserError(
                f"{where}: the mask collator's {collator_key}={collator_value} but the backbone's"
                f" {backbone_key}={side}; set both to one value (data.init_args.collate_fn.init_args.{collator_key}"
                f" and model.init_args.backbone_kwargs.{backbone_key})")


def _side(value: Any) -> Any:
    """A square size as one int (timm stores ``(H, W)``); anything else as it is."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    return value
