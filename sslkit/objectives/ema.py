"""EMA teachers: one way to make them and one way to update them, shared by every EMA objective."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student``: same weights, ``requires_grad=False``, never in the optimizer."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def update_momentum(student: nn.Module, teacher: nn.Module, m: float) -> None:
    """``teacher = m * teacher + (1 - m) * student``, parameter by parameter (buffers copied).

    BYOL (Grill et al., 2020, Eq. 1); the same update in MoCo, DINO and I-JEPA.
    """
    s_params, t_params = list(student.parameters()), list(teacher.parameters())
    if len(s_params) != len(t_params):
        raise ValueError(f"student has {len(s_params)} parameters, teacher {len(t_params)}")
    torch._foreach_lerp_(t_params, s_params, 1.0 - m) if t_params else None
    for s_buf, t_buf in zip(student.buffers(), teacher.buffers()):
        t_buf.copy_(s_buf)
