"""Optimizers, parameter groups and schedules."""

from sslkit.optim.param_groups import build_optimizer, param_groups
from sslkit.optim.schedules import cosine_increase, linear_warmup_constant, warmup_cosine

__all__ = ["build_optimizer", "param_groups", "warmup_cosine", "cosine_increase", "linear_warmup_constant"]
