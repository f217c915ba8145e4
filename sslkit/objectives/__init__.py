"""Objectives: one LightningModule per method."""

from sslkit.objectives.base import SSLObjective
from sslkit.objectives.loading import load_objective
from sslkit.objectives.simclr import SimCLR

__all__ = ["SSLObjective", "SimCLR", "load_objective"]
