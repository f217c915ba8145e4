"""EMA objectives under DeepSpeed ZeRO through Lightning: train, checkpoint, resume, convert to fp32.

Each case trains BYOL, I-JEPA, DINOv2 or MSN (tiny ViT, bf16) for 3 steps, resumes in a new process to 5 steps
from the DeepSpeed checkpoint folder ``last.ckpt``, and converts it with DeepSpeed's ``zero_to_fp32``
(``python -m sslkit.distributed.zero``). Checked: the teacher's fp32 EMA shadows are written per
rank, restored exactly on resume, and become the teacher weights of the fp32 checkpoint, which
``load_objective`` reads. The ``gpu`` cases run every objective x stage on CUDA; the CPU cases run
DeepSpeed's CPU accelerator (gloo) through ``tests/distributed/zero_run.py``'s ``CPUZeROStrategy``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sslkit.distributed.zero import merge_ema_shadows
from sslkit.objectives import load_objective
from tests.distributed.helpers import REPO_ROOT, child_env

DRIVER = Path(__file__).with_name("zero_run.py")
CASES = [("byol", 2), ("byol", 3), ("ijepa", 2), ("ijepa", 3), ("dinov2", 2), ("dinov2", 3), ("msn", 3)]
CPU_CASES = [("byol", 2), ("ijepa", 3), ("dinov2", 3)]  # the rest on GPUs only: a few minutes of 2-core CPU otherwise


def _train(objective: str, stage: int, steps: int, shards: Path, out: Path, cpu: bool) -> None:
    command = [sys.executable, str(DRIVER), "--objective", objective, "--stage", str(stage), "--steps", str(steps),
               "--shards", str(shards), "--out", str(out), *(["--cpu"] if cpu else [])]
    env = child_env(out)
    env.pop("SSLKIT_RUN_DIR")
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]


def _check(objective: str, stage: int, shards: Path, tmp_path: Path, cpu: bool) -> None:
    pytest.importorskip("deepspeed")
    last = tmp_path / "checkpoints" / "last.ckpt"
    _train(objective, stage, 3, shards, tmp_path, cpu)
    shadows_3 = torch.load(last / "ema_fp32_rank0.pt", weights_only=True)
    teacher_names = [n for n in shadows_3 if n.startswith("teacher_")]
    assert teacher_names and len(teacher_names) == len(shadows_3), "bf16 teacher parameters carry fp32 shadows"
    assert all(v.dtype == torch.float32 for v in shadows_3.values())

    _train(objective, stage, 5, shards, tmp_path, cpu)  # resumes from last.ckpt (a folder)
    restored = torch.load(tmp_path / "shadows-at-start-step3.pt", weights_only=True)
    assert restored.keys() == shadows_3.keys()
    for name, value in shadows_3.items():  # the fp32 shadows came back exactly, not re-rounded from bf16
        assert torch.equal(restored[name], value), name

    fp32 = tmp_path / "fp32.ckpt"
    subprocess.run([sys.executable, "-m", "sslkit.distributed.zero", str(last), str(fp32)], check=True,
                   env=child_env(tmp_path), cwd=REPO_ROOT, capture_output=True)
    checkpoint = torch.load(fp32, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 5
    state = checkpoint["state_dict"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    merged = merge_ema_shadows(last, {k: v.shape for k, v in state.items()})
    moved = 0.0
    for name, value in merged.items():  # the teacher in the fp32 checkpoint is the fp32 EMA
        assert torch.equal(state[name], value), name
        moved = max(moved, (value - shadows_3[name].reshape(value.shape)).abs().max().item())
    assert moved > 0, "the EMA teacher moved between steps 3 and 5"
    model = load_objective(fp32)
    assert type(model).__name__ == {"byol": "BYOL", "ijepa": "IJEPA", "dinov2": "DINOv2", "msn": "MSN"}[objective]


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize(("objective", "stage"), CASES, ids=[f"{o}-zero{s}" for o, s in CASES])
def test_zero_ema_objective_on_gpu(objective: str, stage: int, digit_shards: Path, tmp_path: Path) -> None:
    _check(objective, stage, digit_shards, tmp_path, cpu=False)


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "stage"), CPU_CASES, ids=[f"{o}-zero{s}" for o, s in CPU_CASES])
def test_zero_ema_objective_on_cpu(objective: str, stage: int, digit_shards: Path, tmp_path: Path) -> None:
    _check(objective, stage, digit_shards, tmp_path, cpu=True)
