"""``kill -9`` at a random step, ``sslkit pretrain --resume auto``: every sample once, same final weights.

A real ``sslkit pretrain`` process (SimCLR, 2-block ViT, one DataLoader worker so worker state is
covered) is killed with SIGKILL — no handler runs — at a random step after its first checkpoint. The
same command resumes from ``<run_dir>/checkpoints/last.ckpt``. Steps after that checkpoint are lost
work and are replayed; the steps that count (each step's last record) must cover every sample of
every epoch exactly once, and with deterministic views the final weights must equal those of a run
that was never interrupted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from sslkit.callbacks.sample_log import read_key_log
from tests.distributed.conftest import NUM_SAMPLES
from tests.distributed.helpers import (
    REPO_ROOT, assert_exactly_once, child_env, effective_steps, pretrain_command, run_pretrain, tiny_recipe,
    write_recipe,
)

BATCH, EPOCHS, EVERY = 8, 2, 3
STEPS_PER_EPOCH = NUM_SAMPLES // BATCH  # 8


def _kill_at_step(recipe: Path, run_dir: Path, key_log: Path, step: int, timeout: float = 240) -> int:
    """Start a pretrain, SIGKILL its whole process group once ``step`` is logged; the last logged step."""
    proc = subprocess.Popen(pretrain_command(recipe), env=child_env(run_dir), cwd=REPO_ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if key_log.exists() and any(r["step"] >= step for r in read_key_log(key_log)):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            if proc.poll() is not None:
                pytest.fail(f"pretrain ended before step {step}: {proc.stderr.read().decode()[-3000:]}")
            time.sleep(0.05)
        else:
            pytest.fail(f"step {step} not reached in {timeout} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return read_key_log(key_log)[-1]["step"]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_kill9_resume_exactly_once_and_same_weights(digit_shards: Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("SSLKIT_KILL_SEED", time.time_ns() % 10_000))
    kill_step = random.Random(seed).randint(EVERY + 1, EPOCHS * STEPS_PER_EPOCH - 2)
    print(f"kill step {kill_step} (SSLKIT_KILL_SEED={seed} reproduces it)")

    killed_dir = tmp_path / "killed"
    recipe = write_recipe(tiny_recipe(digit_shards, killed_dir / "keys", batch_size=BATCH, max_epochs=EPOCHS,
                                      every_n_train_steps=EVERY), tmp_path / "killed.yaml")
    last_logged = _kill_at_step(recipe, killed_dir, killed_dir / "keys" / "keys-rank0.jsonl", kill_step)
    saved = torch.load(killed_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] <= last_logged
    run_pretrain(recipe, killed_dir)  # --resume auto: continues from last.ckpt

    records = read_key_log(killed_dir / "keys" / "keys-rank0.jsonl")
    replayed = [r["step"] for r in records[last_logged:]]
    assert replayed[: last_logged - saved["global_step"]] == list(range(saved["global_step"] + 1, last_logged + 1))
    for step in range(1, EPOCHS * STEPS_PER_EPOCH + 1):  # a replayed step saw the very same samples
        assert len({tuple(r["keys"]) for r in records if r["step"] == step}) == 1, step
    assert_exactly_once(killed_dir / "keys", 1, NUM_SAMPLES, EPOCHS, STEPS_PER_EPOCH)

    clean_dir = tmp_path / "clean"
    clean = write_recipe(tiny_recipe(digit_shards, clean_dir / "keys", batch_size=BATCH, max_epochs=EPOCHS,
                                     every_n_train_steps=EVERY), tmp_path / "clean.yaml")
    run_pretrain(clean, clean_dir)
    resumed, uninterrupted = _weights(killed_dir), _weights(clean_dir)
    assert resumed.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():  # same ops on one thread: bitwise equal
        assert torch.equal(resumed[name], value), name
