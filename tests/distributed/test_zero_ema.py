"""EMA teachers under low precision and DeepSpeed ZeRO-3, on CPU.

- bf16 parameters: a bf16 accumulator rounds the EMA increment away (the teacher freezes); the fp32
  shadow in :mod:`sslkit.teacher.update` tracks the fp32 reference.
- ZeRO-3: two real gloo processes partition a student and its teacher with ``deepspeed.zero.Init``
  (each rank holds ``ds_tensor``, a slice of every flattened parameter; ``param.data`` is empty).
  ``update_momentum`` updates each rank's teacher slices from its student slices; gathered, the
  teacher equals the EMA computed on whole tensors. Parameters that are whole on every rank at update
  time (ZeRO-3's persistent ones; here gathered with ``GatheredParameters``) are updated whole and in
  their slice. The per-rank fp32 shadows merge back into whole tensors as the checkpoint converter does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from sslkit.teacher import SHADOW_ATTR, ema_state_dict, make_teacher, update_momentum

M, STEPS = 0.99, 3


def _models(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    student = nn.Sequential(nn.Linear(7, 13), nn.LayerNorm(13), nn.Linear(13, 5))  # odd sizes: padded slices
    teacher = make_teacher(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))  # the student has moved away from the teacher
    return student, teacher


def _reference(student: nn.Module, teacher: nn.Module, steps: int) -> dict[str, torch.Tensor]:
    out = {n: t.detach().double().clone() for n, t in teacher.named_parameters()}
    s = {n: p.detach().double() for n, p in student.named_parameters()}
    for _ in range(steps):
        for n in out:
            out[n] = M * out[n] + (1 - M) * s[n]
    return out


def test_bf16_teacher_tracks_fp32_reference_through_shadow() -> None:
    student, teacher = _models()
    reference = _reference(student, teacher, 200)
    student, teacher = student.bfloat16(), teacher.bfloat16()
    naive = [t.detach().clone() for t in teacher.parameters()]
    for _ in range(200):
        update_momentum(student, teacher, M)
        for t, s in zip(naive, student.parameters()):
            t.lerp_(s.detach(), 1 - M)  # what a bf16 accumulator does
    for (name, t), t_naive in zip(teacher.named_parameters(), naive):
        assert SHADOW_ATTR in t.__dict__
        ref = reference[name].float()
        shadow_err = (t.__dict__[SHADOW_ATTR] - ref).abs().max().item()
        naive_err = (t_naive.float() - ref).abs().max().item()
        assert shadow_err < 2e-2, name  # the student's bf16 rounding only
        assert naive_err > 5 * shadow_err, name  # a bf16 accumulator falls far behind


def test_fp32_update_unchanged_and_buffers_copied() -> None:
    student, teacher = _models()
    reference = _reference(student, teacher, STEPS)
    for _ in range(STEPS):
        update_momentum(student, teacher, M)
    for name, t in teacher.named_parameters():
        torch.testing.assert_close(t.detach().double(), reference[name], atol=1e-6, rtol=0)
        assert SHADOW_ATTR not in t.__dict__


def _zero3_worker(rank: int, world_size: int, dtype: torch.dtype, out: Path) -> None:
    import deepspeed

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # A file rendezvous: no TCP port to race other processes for. DeepSpeed adopts the process group.
    torch.distributed.init_process_group("gloo", init_method=f"file://{out / 'rendezvous'}", rank=rank,
                                         world_size=world_size)
    deepspeed.init_distributed(dist_backend="gloo")
    student, teacher = _models()
    container = nn.ModuleDict({"student": student, "teacher": teacher}).to(dtype)
    reference = _reference(student, teacher, STEPS)  # exact EMA from the (rounded) starting values
    config = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3}}
    deepspeed.zero.Init(module=container, config_dict_or_path=config, dtype=dtype)
    assert all(p.data.numel() == 0 and p.ds_tensor.numel() < p.ds_numel for p in container.parameters())

    update_momentum(student, teacher, M)  # partitioned: slice by slice
    whole = [student[0].weight, teacher[0].weight]  # as ZeRO-3 keeps small parameters: whole on every rank
    with deepspeed.zero.GatheredParameters(whole):
        assert all(p.data.numel() == p.ds_numel for p in whole)
        update_momentum(student, teacher, M)
    update_momentum(student, teacher, M)

    shadows = ema_state_dict(container)
    torch.save(shadows, out / f"ema_fp32_rank{rank}.pt")
    with deepspeed.zero.GatheredParameters(list(teacher.parameters())):
        gathered = {n: t.detach().float().clone() for n, t in teacher.named_parameters()}
    if rank == 0:
        torch.save({"gathered": gathered, "reference": {n: v.float() for n, v in reference.items()}},
                   out / "result.pt")
    # Leave without finalising the interpreter. ZeRO-3's gathers are asynchronous gloo work whose
    # objects hold Python tensors; gloo's worker thread may drop the last one after the main thread
    # has begun finalising, and that thread then aborts the process ("terminate called without an
    # active exception", seen in torch 2.15 core dumps) after all the work here is done and saved.
    torch.distributed.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_zero3_sharded_ema_equals_whole_ema(dtype: torch.dtype, tmp_path: Path) -> None:
    pytest.importorskip("deepspeed")
    from sslkit.distributed.zero import merge_ema_shadows

    mp.spawn(_zero3_worker, args=(2, dtype, tmp_path), nprocs=2, join=True)
    result = torch.load(tmp_path / "result.pt", weights_only=True)
    rtol = 0 if dtype == torch.float32 else 2**-8  # bf16: the teacher weights are the rounded shadow
    for name, ref in result["reference"].items():
        torch.testing.assert_close(result["gathered"][name], ref, atol=1e-6, rtol=rtol, msg=name)
    if dtype == torch.bfloat16:  # the fp32 shadows, merged from both ranks' slices, are the exact EMA
        shapes = {f"teacher.{n}": v.shape for n, v in result["reference"].items()}
        merged = merge_ema_shadows(tmp_path, shapes)
        assert merged.keys() == shapes.keys()
        for name, ref in result["reference"].items():
            torch.testing.assert_close(merged[f"teacher.{name}"], ref, atol=1e-6, rtol=0, msg=name)
