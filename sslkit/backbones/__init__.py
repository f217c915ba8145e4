"""Backbones: timm's models through one entry point, plus what timm lacks for SSL.

:func:`create_backbone` is the entry point objectives use. :class:`VisionTransformer` is timm's ViT
(same state-dict keys) with token keeping, variable-length batches, registers and local attention;
:class:`IJEPAPredictor` and :class:`MAEDecoder` are the masked-objective heads built on the same
fused attention.
"""

from sslkit.backbones.attention import Attention, attend, reference_attention
from sslkit.backbones.decoder import MAEDecoder
from sslkit.backbones.factory import create_backbone, timm_kwargs
from sslkit.backbones.predictor import IJEPAPredictor
from sslkit.backbones.vit import VisionTransformer

__all__ = [
    "Attention",
    "IJEPAPredictor",
    "MAEDecoder",
    "VisionTransformer",
    "attend",
    "create_backbone",
    "reference_attention",
    "timm_kwargs",
]
