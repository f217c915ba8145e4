"""Losses: pure typed functions (small modules where state is needed), lightly's wherever it has them."""

from sslkit.losses.barlowtwins import barlow_twins_loss
from sslkit.losses.byol import byol_loss
from sslkit.losses.dino import DINOLoss
from sslkit.losses.mocov3 import mocov3_loss
from sslkit.losses.tico import TiCoLoss

__all__ = ["DINOLoss", "TiCoLoss", "barlow_twins_loss", "byol_loss", "mocov3_loss"]
