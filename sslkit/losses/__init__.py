"""Losses: pure typed functions (small modules where state is needed), lightly's wherever it has them."""

from sslkit.losses.barlowtwins import barlow_twins_loss
from sslkit.losses.byol import byol_loss
from sslkit.losses.care import orthogonal_equivariance_loss
from sslkit.losses.dino import DINOLoss
from sslkit.losses.dinov2 import TeacherCentering, dino_image_loss, gram_anchoring_loss, ibot_patch_loss
from sslkit.losses.ijepa import ijepa_loss, ijepa_targets
from sslkit.losses.masked_pixels import mae_loss, masked_patch_pixels, simmim_loss
from sslkit.losses.memory_bank import FeatureQueue, nearest_neighbours
from sslkit.losses.mocov3 import mocov3_loss
from sslkit.losses.msn import MSNLoss
from sslkit.losses.rotation import rotation_prediction_loss
from sslkit.losses.simsiam import simsiam_loss
from sslkit.losses.swav import SwAVLoss
from sslkit.losses.tico import TiCoLoss

__all__ = [
    "DINOLoss", "FeatureQueue", "MSNLoss", "SwAVLoss", "TeacherCentering", "TiCoLoss", "barlow_twins_loss", "byol_loss",
    "dino_image_loss", "gram_anchoring_loss", "ibot_patch_loss", "ijepa_loss", "ijepa_targets", "mae_loss",
    "masked_patch_pixels", "mocov3_loss", "nearest_neighbours", "orthogonal_equivariance_loss",
    "rotation_prediction_loss", "simmim_loss", "simsiam_loss",
]
