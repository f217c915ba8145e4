"""Kill a real ``sslkit pretrain`` again and again, re-run the same command: every sample once, same weights.

A tiny SimCLR (2-block ViT, deterministic views, one DataLoader worker per rank) over 64 digits is
killed with SIGKILL — no handler runs — at random steps and, every third time, while a checkpoint is
half written (:class:`~tests.distributed.kill_helpers.PausingCheckpointIO` pauses mid-write). The same
command resumes from ``<run_dir>/checkpoints/last.ckpt``. Steps after that checkpoint are lost work and
are replayed with the same samples; the steps that count (each step's last record) must cover every
sample of every epoch exactly once, the step count must be the uninterrupted run's, and the final
weights must equal, bit for bit, those of a run never interrupted. On 1 rank and on 2 DDP ranks (gloo).

Elastic: killed mid-epoch at 2 ranks x 2 workers and resumed at 1 rank x 3 workers (and 1 -> 3
ranks), the interrupted epoch's samples are each trained once and later epochs follow the new world.
SIGINT (Ctrl-C to the process group) checkpoints at the step boundary and exits with 75; the same
command then redoes at most the in-flight step and loses nothing.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from sslkit.callbacks.sample_log import read_key_log
from sslkit.distributed.preemption import EXIT_PREEMPTED
from tests.distributed.conftest import NUM_SAMPLES
from tests.distributed.helpers import assert_exactly_once, effective_steps, run_pretrain, tiny_recipe, write_recipe
from tests.distributed.kill_helpers import keep_saved_steps, run_until_killed, saved_step

BATCH, EPOCHS, EVERY, KILLS = 8, 3, 2, 10


def _steps_per_epoch(ranks: int, batch: int = BATCH) -> int:
    return NUM_SAMPLES // (ranks * batch)


def _recipe(shards: Path, run_dir: Path, path: Path, ranks: int, pausing: bool, **kw) -> Path:
    recipe = tiny_recipe(shards, run_dir / "keys", batch_size=kw.pop("batch_size", BATCH), max_epochs=EPOCHS,
                         every_n_train_steps=kw.pop("every", EVERY), devices=ranks,
                         strategy="ddp" if ranks > 1 else None, **kw)
    if pausing:
        recipe["trainer"]["plugins"] = [{"class_path": "tests.distributed.kill_helpers.PausingCheckpointIO"}]
    return write_recipe(recipe, path)


def _final(run_dir: Path, steps: int) -> dict:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == steps  # last.ckpt holds the final step: the uninterrupted step count
    return ckpt["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(digit_shards: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Final weights of the same run on ``ranks`` ranks, never killed (computed once per rank count)."""
    weights: dict[int, dict] = {}

    def get(ranks: int) -> dict:
        if ranks not in weights:
            run_dir = tmp_path_factory.mktemp(f"uninterrupted{ranks}")
            run_pretrain(_recipe(digit_shards, run_dir, run_dir / "recipe.yaml", ranks, pausing=False), run_dir)
            steps = EPOCHS * _steps_per_epoch(ranks)
            assert_exactly_once(run_dir / "keys", ranks, NUM_SAMPLES, EPOCHS, steps // EPOCHS)
            weights[ranks] = _final(run_dir, steps)
        return weights[ranks]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2])
def test_kill9_soak_exactly_once_and_same_weights(ranks: int, uninterrupted, digit_shards: Path,  # noqa: ANN001
                                                  tmp_path: Path) -> None:
    seed = int(os.environ.get("SSLKIT_KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    steps = EPOCHS * _steps_per_epoch(ranks)
    run_dir = tmp_path / "run"
    recipe = _recipe(digit_shards, run_dir, tmp_path / "recipe.yaml", ranks, pausing=True, step_seconds=0.05)
    key_log = run_dir / "keys" / "keys-rank0.jsonl"
    kills = []
    for kill in range(KILLS):
        start = saved_step(run_dir)
        mid_write = kill % 3 == 2
        # spread over the whole run (all epochs), a random step or two past an even share
        target = min(max(start + 1, (kill + 1) * (steps - 2) // KILLS + rng.randint(0, 1)), steps - 1)
        run_until_killed(recipe, run_dir, key_log, step=target, mid_write=mid_write)
        kills.append(("write" if mid_write else target, start, saved_step(run_dir)))
    print(f"kills (point, from, last.ckpt after): {kills} (SSLKIT_KILL_SEED={seed} reproduces them)")
    assert any(k[0] == "write" for k in kills) and saved_step(run_dir) < steps
    run_pretrain(recipe, run_dir)  # the same command: resumes and finishes
    assert not [p.name for p in (run_dir / "checkpoints").iterdir() if ".tmp" in p.name]  # stale temps removed

    for rank in range(ranks):  # a replayed step saw the very same samples
        records = read_key_log(run_dir / "keys" / f"keys-rank{rank}.jsonl")
        for step in range(1, steps + 1):
            assert len({tuple(r["keys"]) for r in records if r["step"] == step}) == 1, f"step {step} changed"
    assert_exactly_once(run_dir / "keys", ranks, NUM_SAMPLES, EPOCHS, steps // EPOCHS)
    resumed, reference = _final(run_dir, steps), uninterrupted(ranks)
    assert resumed.keys() == reference.keys()
    for name, value in reference.items():  # same ops on one thread: bitwise equal
        assert torch.equal(resumed[name], value), name


def _epoch_keys(key_dir: Path, ranks: int) -> dict[int, Counter]:
    per_epoch: dict[int, Counter] = {}
    for rank in range(ranks):
        path = key_dir / f"keys-rank{rank}.jsonl"
        for r in effective_steps(read_key_log(path)) if path.exists() else []:
            per_epoch.setdefault(r["epoch"], Counter()).update(r["keys"])
    return per_epoch


@pytest.mark.slow
@pytest.mark.parametrize("before,after", [((2, 2), (1, 3)), ((1, 1), (3, 1))])
def test_elastic_resume_on_another_allocation(before: tuple, after: tuple, digit_shards: Path, tmp_path: Path) -> None:
    (ranks, workers), (new_ranks, new_workers) = before, after
    run_dir = tmp_path / "run"
    recipe = _recipe(digit_shards, run_dir, tmp_path / "recipe.yaml", ranks, pausing=False, batch_size=4, every=3,
                     num_workers=workers)
    per_epoch = _steps_per_epoch(ranks, 4)
    run_until_killed(recipe, run_dir, run_dir / "keys" / "keys-rank0.jsonl", step=per_epoch + 4)
    saved = saved_step(run_dir)
    assert per_epoch < saved < 2 * per_epoch  # inside epoch 1
    keep_saved_steps(run_dir / "keys", saved)  # the lost steps are not replayed on the new world
    overrides = [f"--trainer.devices={new_ranks}", f"--data.init_args.num_workers={new_workers}"]
    if new_ranks > 1:
        overrides.append("--trainer.strategy=ddp")
    result = run_pretrain(recipe, run_dir, *overrides)
    assert "another allocation" in result.stderr

    keys = _epoch_keys(run_dir / "keys", max(ranks, new_ranks))
    assert sorted(keys) == [0, 1, 2]
    interrupted = keys[1]
    assert max(interrupted.values()) == 1  # no sample of the interrupted epoch trained twice
    assert NUM_SAMPLES - len(interrupted) < new_ranks * 4  # only the new global batch's remainder dropped
    later = keys[2]
    assert max(later.values()) == 1 and len(later) == NUM_SAMPLES // (new_ranks * 4) * new_ranks * 4


@pytest.mark.slow
def test_sigint_checkpoints_and_the_same_command_resumes(digit_shards: Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("SSLKIT_KILL_SEED", time.time_ns() % 10_000))
    steps = EPOCHS * _steps_per_epoch(1)
    stop_at = random.Random(seed).randint(2, steps - 4)
    run_dir = tmp_path / "run"
    recipe = _recipe(digit_shards, run_dir, tmp_path / "recipe.yaml", 1, pausing=False, every=1000,
                     step_seconds=0.2)
    key_log = run_dir / "keys" / "keys-rank0.jsonl"
    rc, stderr = run_until_killed(recipe, run_dir, key_log, step=stop_at, sig=signal.SIGINT)
    assert rc == EXIT_PREEMPTED, f"SSLKIT_KILL_SEED={seed}: {stderr[-3000:]}"
    assert "resume with: sslkit pretrain -c" in stderr
    logged = read_key_log(key_log)[-1]["step"]
    assert saved_step(run_dir) == logged  # checkpoint at the step boundary: nothing lost
    run_pretrain(recipe, run_dir)  # the same command
    assert_exactly_once(run_dir / "keys", 1, NUM_SAMPLES, EPOCHS, steps // EPOCHS)
    replayed = [r["step"] for r in read_key_log(key_log)].count(logged + 1)
    assert replayed <= 2  # at most the in-flight step is redone
