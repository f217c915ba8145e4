"""Two real DDP processes (gloo, CPU) optimize exactly what one process does on the same global batch.

SimCLR (NT-Xent with lightly's gather-with-gradient of negatives) is launched with ``torchrun``;
BYOL (EMA teacher) by Lightning itself from one plain process (``devices=2``). The backbone is a ViT
(LayerNorm only, per sample). The heads' BatchNorm1d couples samples, and PyTorch has no
SyncBatchNorm on CPU (DDP raises "SyncBatchNorm layers only work with GPU modules"), so the driver
swaps it for a per-sample GroupNorm(1, C); on GPUs ``recipes/_base/trainer/ddp.yaml`` uses SyncBatchNorm.

Tolerances (float32, different reduction orders): the mean of the ranks' step losses equals the
single-process loss within ``1e-5`` absolute; every parameter and buffer after two SGD steps (the
teacher after one EMA update) within ``1e-5`` absolute. The parameters do move by far more than that.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.distributed.ddp_step import build_model
from tests.distributed.helpers import REPO_ROOT, child_env

DRIVER = Path(__file__).with_name("ddp_step.py")
LOSS_ATOL, PARAM_ATOL = 1e-5, 1e-5


def _launch(tmp_path: Path, objective: str, launcher: str) -> tuple[list[float], dict[str, torch.Tensor]]:
    out = tmp_path / launcher
    script = [str(DRIVER), "--objective", objective, "--out", str(out)]
    if launcher == "single":
        command = [sys.executable, *script, "--devices", "1"]
    elif launcher == "torchrun":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *script,
                   "--devices", "2"]
    else:  # Lightning starts rank 1 itself
        command = [sys.executable, *script, "--devices", "2"]
    env = child_env(out)
    env.pop("SSLKIT_RUN_DIR")
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = sorted(out.glob("loss-rank*.json"))
    assert len(ranks) == (1 if launcher == "single" else 2)
    per_rank = [json.loads(p.read_text()) for p in ranks]
    mean_losses = [sum(step) / len(step) for step in zip(*per_rank)]
    return mean_losses, torch.load(out / "state.pt", weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "launcher"), [("simclr", "torchrun"), ("byol", "lightning")])
def test_two_ranks_equal_one_process(objective: str, launcher: str, tmp_path: Path) -> None:
    if objective == "byol":
        pytest.importorskip("sslkit.objectives.byol")
    single_losses, single_state = _launch(tmp_path, objective, "single")
    ddp_losses, ddp_state = _launch(tmp_path, objective, launcher)
    print(f"{objective}: single {single_losses}, ddp {ddp_losses}")
    assert ddp_losses == pytest.approx(single_losses, abs=LOSS_ATOL, rel=0)
    assert ddp_state.keys() == single_state.keys()
    worst = max((ddp_state[k].float() - v.float()).abs().max().item() for k, v in single_state.items())
    print(f"{objective}: max |param difference| {worst:.2e}")
    assert worst <= PARAM_ATOL

    L.seed_everything(0)  # the driver's initialisation
    initial = build_model(objective).state_dict()
    moved = max((single_state[k].float() - v.float()).abs().max().item() for k, v in initial.items())
    assert moved > 100 * PARAM_ATOL  # the comparison is not between untouched parameters
