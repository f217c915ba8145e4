"""Losses: pure typed functions (small modules where state is needed), lightly's wherever it has them."""

from sslkit.losses.mocov3 import mocov3_loss

__all__ = ["mocov3_loss"]
