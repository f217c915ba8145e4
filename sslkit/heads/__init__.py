"""Projection / prediction heads lightly lacks (lightly's heads are used directly elsewhere)."""

from sslkit.heads.mocov3 import mocov3_mlp

__all__ = ["mocov3_mlp"]
