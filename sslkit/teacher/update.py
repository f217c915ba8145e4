"""The exact EMA update of a teacher toward its student, parameter by parameter.

:class:`sslkit.teacher.EMATeacher` is what objectives use; this module is its arithmetic, correct under
every strategy sslkit runs:

- **fp32 parameters** (DDP, single device): ``teacher.lerp_(student, 1 - m)`` in place.
- **bf16/fp16 parameters** (DeepSpeed casts the whole module, teacher included): the EMA increment
  ``(1 - m) * (s - t)`` is far below a bf16 ulp of ``t`` (``m = 0.996``: 0.4% of a difference that is
  itself small), so a bf16 accumulator rounds the update away and the teacher freezes. The teacher's
  true value is kept in an fp32 *shadow* tensor attached to the teacher parameter; the update runs in
  fp32 and the parameter receives the rounded shadow. The student's bf16 rounding enters as unbiased
  noise that the average removes.
- **DeepSpeed ZeRO-3** (parameters partitioned: ``param.ds_tensor`` holds this rank's slice of the
  flattened parameter, ``param.data`` is empty): a teacher parameter and its student parameter have
  the same shape, hence the same partitioning (rank ``r`` holds flat elements ``[r * P, (r + 1) * P)``
  of both), and the EMA is elementwise, so each rank updates its own slice of the teacher from its
  own slice of the student: no communication and no gathered copy, unlike
  ``deepspeed.zero.GatheredParameters`` which would all-gather both models every step. Parameters that
  ZeRO-3 keeps whole on every rank (``ds_persist``, below ``stage3_param_persistence_threshold``, or
  otherwise currently gathered) are updated whole *and* in their slice, so the copy used by the next
  forward and the slice DeepSpeed re-gathers from agree.

Shadows are part of the training state: :func:`ema_state_dict` / :func:`load_ema_state_dict` give
them to the strategy that checkpoints them (``sslkit.distributed.zero.ZeROStrategy`` saves one file
per rank, since under ZeRO-3 each rank holds different slices).
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
from torch import nn

SHADOW_ATTR = "_sslkit_ema_fp32"  # fp32 shadow of a low-precision teacher parameter (or of its ZeRO-3 slice)


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student``: same weights, ``requires_grad=False``, never in the optimizer.

    Call it on an unpartitioned module (in ``__init__``); DeepSpeed ZeRO-3 partitions student and
    teacher alike when the engine starts.
    """
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def update_momentum(student: nn.Module, teacher: nn.Module, m: float) -> None:
    """``teacher = m * teacher + (1 - m) * student``, parameter by parameter (buffers copied).

    BYOL (Grill et al., 2020, Eq. 1); the same update in MoCo, DINO and I-JEPA. See the module
    docstring for low-precision and ZeRO-3 parameters.
    """
    s_params, t_params = list(student.parameters()), list(teacher.parameters())
    if len(s_params) != len(t_params):
        raise ValueError(f"student has {len(s_params)} parameters, teacher {len(t_params)}")
    plain_s, plain_t = [], []
    for s, t in zip(s_params, t_params):
        if is_zero3_param(t):
            _update_zero3(s, t, m)
        elif t.dtype != torch.float32 or SHADOW_ATTR in t.__dict__:
            _update_shadowed(t.data, s.data, t, m)
        else:
            plain_s.append(s.data)
            plain_t.append(t.data)
    if plain_t:
        torch._foreach_lerp_(plain_t, plain_s, 1.0 - m)
    for s_buf, t_buf in zip(student.buffers(), teacher.buffers()):
        t_buf.copy_(s_buf)


def is_zero3_param(p: torch.Tensor) -> bool:
    """Whether ``p`` is partitioned by DeepSpeed ZeRO-3 (it carries ``ds_tensor``)."""
    return getattr(p, "ds_tensor", None) is not None


def _update_shadowed(target: torch.Tensor, source: torch.Tensor, owner: torch.Tensor, m: float) -> None:
    """fp32 EMA of ``target`` toward ``source`` through the shadow kept on ``owner``."""
    shadow = _shadow(owner, target)
    shadow.lerp_(source.to(device=shadow.device, dtype=torch.float32), 1.0 - m)
    target.copy_(shadow)


def _shadow(owner: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    shadow = owner.__dict__.get(SHADOW_ATTR)
    if shadow is None or shadow.numel() != like.numel():
        shadow = like.detach().to(torch.float32).clone()
        setattr(owner, SHADOW_ATTR, shadow)
    return shadow.view(like.shape)


def _update_zero3(s: torch.Tensor, t: torch.Tensor, m: float) -> None:
    if not is_zero3_param(s) or s.ds_numel != t.ds_numel or s.ds_tensor.numel() != t.ds_tensor.numel():
        raise ValueError(
            f"teacher parameter {tuple(t.ds_shape)} is ZeRO-3 partitioned but its student parameter is not"
            " partitioned the same way; build the teacher with make_teacher before the engine starts"
        )
    size = t.ds_tensor.numel()
    start = _partition_rank(t) * size
    stop = min(start + size, t.ds_numel)  # the last rank's slice is padded
    if _available(t) and _available(s):
        # Whole on every rank (persistent): update the whole tensor, then this rank's slice of it.
        if t.dtype == torch.float32:
            t.data.lerp_(s.data, 1.0 - m)
        else:
            _zero3_shadow(t, whole=True, start=start, stop=stop)
            _update_shadowed(t.data, s.data, t, m)
        if stop > start:
            t.ds_tensor.data[: stop - start].copy_(t.data.reshape(-1)[start:stop])
        return
    if t.ds_tensor.dtype == torch.float32:
        t.ds_tensor.data.lerp_(s.ds_tensor.data.to(t.ds_tensor.device), 1.0 - m)
    else:
        _zero3_shadow(t, whole=False, start=start, stop=stop)
        _update_shadowed(t.ds_tensor.data, s.ds_tensor.data, t, m)


def _zero3_shadow(t: torch.Tensor, *, whole: bool, start: int, stop: int) -> None:
    """Convert ``t``'s shadow between its whole and its slice form, keeping the fp32 values it has."""
    shadow = t.__dict__.get(SHADOW_ATTR)
    size = t.ds_tensor.numel()
    if shadow is None or size == t.ds_numel:
        return
    flat = shadow.reshape(-1)
    if whole and flat.numel() == size:  # slice -> whole: other ranks' elements from the (rounded) weights
        full = t.data.detach().reshape(-1).to(torch.float32).clone()
        full[start:stop] = flat[: stop - start].to(full.device)
        setattr(t, SHADOW_ATTR, full.view(t.data.shape))
    elif not whole and flat.numel() == t.ds_numel:  # whole -> slice
        part = t.ds_tensor.detach().to(torch.float32).clone()
        part[: stop - start] = flat[start:stop].to(part.device)
        setattr(t, SHADOW_ATTR, part)


def _available(p: torch.Tensor) -> bool:
    status = getattr(p, "ds_status", None)
    return status is not None and status.name == "AVAILABLE" and p.data.numel() == p.ds_numel


def _partition_rank(p: torch.Tensor) -> int:
    group = getattr(p, "ds_process_group", None)
    return dist.get_rank(group=group) if dist.is_available() and dist.is_initialized() else 0


def ema_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """fp32 shadows of ``module``'s parameters by qualified name (this rank's; empty in fp32 runs)."""
    return {
        name: p.__dict__[SHADOW_ATTR].detach().cpu()
        for name, p in module.named_parameters()
        if SHADOW_ATTR in p.__dict__
    }


def load_ema_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Restore shadows written by :func:`ema_state_dict` on the same rank and world size."""
    params = dict(module.named_parameters())
    unknown = sorted(set(state) - set(params))
    if unknown:
        raise KeyError(f"EMA shadows for unknown parameters: {unknown[:5]}")
    for name, shadow in state.items():
        p = params[name]
        local = p.ds_tensor if is_zero3_param(p) and shadow.numel() != p.ds_numel else p.data
        setattr(p, SHADOW_ATTR, shadow.to(device=local.device, dtype=torch.float32).clone())
