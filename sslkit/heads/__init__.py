"""Projection / prediction heads lightly lacks (lightly's heads are used directly elsewhere)."""

from sslkit.heads.mocov3 import mocov3_mlp
from sslkit.heads.rotation import RotationPredictionHead

__all__ = ["RotationPredictionHead", "mocov3_mlp"]
