"""Objectives: one LightningModule per method."""

from sslkit.objectives.barlowtwins import BarlowTwins
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.byol import BYOL
from sslkit.objectives.care import CARE
from sslkit.objectives.dino import DINO
from sslkit.objectives.dinov2 import DINOv2
from sslkit.objectives.ijepa import IJEPA
from sslkit.objectives.lejepa import LeJEPA
from sslkit.objectives.loading import load_objective
from sslkit.objectives.mae import MAE
from sslkit.objectives.mocov3 import MoCoV3
from sslkit.objectives.msn import MSN
from sslkit.objectives.nnclr import NNCLR
from sslkit.objectives.simclr import SimCLR
from sslkit.objectives.simmim import SimMIM
from sslkit.objectives.simsiam import SimSiam
from sslkit.objectives.swav import SwAV
from sslkit.objectives.tico import TiCo
from sslkit.objectives.vicreg import VICReg

__all__ = [
    "BarlowTwins",
    "BYOL",
    "CARE",
    "DINO",
    "DINOv2",
    "IJEPA",
    "LeJEPA",
    "MAE",
    "MoCoV3",
    "MSN",
    "NNCLR",
    "SimCLR",
    "SimMIM",
    "SimSiam",
    "SSLObjective",
    "SwAV",
    "TiCo",
    "VICReg",
    "load_objective",
]
