"""``kill -9`` at a random step, ``sslkit pretrain --resume auto``: every sample once, same final weights.

A real ``sslkit pretrain`` process (SimCLR, 2-block ViT, one DataLoader worker so worker state is
covered) is killed with SIGKILL — no handler runs — at a random step after a checkpoint (every 3
steps; 8 steps per epoch). The same command resumes from ``<run_dir>/checkpoints/last.ckpt``. Steps
after that checkpoint are lost work and are replayed with the same samples; the steps that count
(each step's last record) must cover every sample of every epoch exactly once, and with
deterministic views the final weights must equal, bit for bit, those of a run never interrupted.
One case resumes inside the first epoch, one inside the second.
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
    REPO_ROOT, assert_exactly_once, child_env, pretrain_command, run_pretrain, tiny_recipe, write_recipe,
)

BATCH, EPOCHS, EVERY = 8, 2, 3
STEPS_PER_EPOCH = NUM_SAMPLES // BATCH  # 8
KILL_STEPS = {0: (4, 5), 1: (11, 14)}  # resume epoch -> kill-step range (checkpoints at 3, 6 | 9, 12, 15)


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
            time.sleep(0.02)
        else:
            pytest.fail(f"step {step} not reached in {timeout} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return read_key_log(key_log)[-1]["step"]


def _final(run_dir: Path) -> dict:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == EPOCHS * STEPS_PER_EPOCH  # last.ckpt holds the final step
    return ckpt["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(digit_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """Final weights of the same run, never killed."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    recipe = write_recipe(tiny_recipe(digit_shards, run_dir / "keys", batch_size=BATCH, max_epochs=EPOCHS,
                                      every_n_train_steps=EVERY), run_dir / "recipe.yaml")
    run_pretrain(recipe, run_dir)
    assert_exactly_once(run_dir / "keys", 1, NUM_SAMPLES, EPOCHS, STEPS_PER_EPOCH)
    return _final(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("resume_epoch", [0, 1])
def test_kill9_resume_exactly_once_and_same_weights(resume_epoch: int, uninterrupted: dict, digit_shards: Path,
                                                     tmp_path: Path) -> None:
    seed = int(os.environ.get("SSLKIT_KILL_SEED", time.time_ns() % 10_000))
    kill_step = random.Random(seed).randint(*KILL_STEPS[resume_epoch])
    print(f"kill step {kill_step} (SSLKIT_KILL_SEED={seed} reproduces it)")
    run_dir = tmp_path / "run"
    recipe = write_recipe(tiny_recipe(digit_shards, run_dir / "keys", batch_size=BATCH, max_epochs=EPOCHS,
                                      every_n_train_steps=EVERY), tmp_path / "recipe.yaml")
    last_logged = _kill_at_step(recipe, run_dir, run_dir / "keys" / "keys-rank0.jsonl", kill_step)
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    print(f"killed after step {last_logged}; last.ckpt at step {saved['global_step']}")
    assert saved["global_step"] <= last_logged
    assert saved["ShardDataModule"]["epoch"] == resume_epoch and saved["ShardDataModule"]["batches_consumed"] > 0

    run_pretrain(recipe, run_dir)  # --resume auto: continues from last.ckpt
    records = read_key_log(run_dir / "keys" / "keys-rank0.jsonl")
    replayed = [r["step"] for r in records[last_logged:]]
    assert replayed[: last_logged - saved["global_step"]] == list(range(saved["global_step"] + 1, last_logged + 1))
    for step in range(1, EPOCHS * STEPS_PER_EPOCH + 1):  # a replayed step saw the very same samples
        assert len({tuple(r["keys"]) for r in records if r["step"] == step}) == 1, f"step {step} changed samples"
    assert_exactly_once(run_dir / "keys", 1, NUM_SAMPLES, EPOCHS, STEPS_PER_EPOCH)

    resumed = _final(run_dir)
    assert resumed.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():  # same ops on one thread: bitwise equal
        assert torch.equal(resumed[name], value), name
