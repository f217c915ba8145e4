"""Helpers for the kill/resume soak tests: a checkpoint writer that pauses mid-write, a killer, key-log merging."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from sslkit.callbacks.sample_log import read_key_log
from sslkit.distributed.checkpoint_io import AtomicCheckpointIO, _fsync_dir
from tests.distributed.helpers import REPO_ROOT, child_env, pretrain_command

WRITING = "writing-checkpoint"  # marker file in the run folder while a checkpoint is half written


class PausingCheckpointIO(AtomicCheckpointIO):
    """Atomic writes that stop half-way for ``pause`` seconds, with a marker, so a test can kill mid-write."""

    def __init__(self, pause: float = 0.4) -> None:
        super().__init__()
        self.pause = pause

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        marker = path.parent.parent / WRITING
        with open(tmp, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            marker.write_text(str(checkpoint.get("global_step")))
            time.sleep(self.pause)
            f.write(data[len(data) // 2:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        marker.unlink(missing_ok=True)


def run_until_killed(recipe: Path, run_dir: Path, key_log: Path, *, step: int | None = None, mid_write: bool = False,
                     extra: tuple[str, ...] = (), sig: int = signal.SIGKILL, timeout: float = 240) -> tuple[int, str]:
    """Start a pretrain; send ``sig`` to its process group once this run logged ``step`` (or mid-checkpoint-write).

    Returns the exit code and the stderr.
    """
    (run_dir / WRITING).unlink(missing_ok=True)  # left by an earlier kill
    before = len(read_key_log(key_log)) if key_log.exists() else 0
    proc = subprocess.Popen(pretrain_command(recipe, *extra), env=child_env(run_dir), cwd=REPO_ROOT,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            hit = (run_dir / WRITING).exists() if mid_write else (
                key_log.exists() and any(r["step"] >= step for r in read_key_log(key_log)[before:]))
            if hit:
                os.killpg(proc.pid, sig)
                break
            if proc.poll() is not None:
                pytest.fail(f"pretrain ended before the kill: {proc.stderr.read().decode()[-3000:]}")
            time.sleep(0.01)
        else:
            pytest.fail(f"kill point not reached in {timeout} s")
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    return proc.returncode, stderr


def saved_step(run_dir: Path) -> int:
    path = run_dir / "checkpoints" / "last.ckpt"
    if not path.exists():
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def keep_saved_steps(key_dir: Path, step: int) -> None:
    """Drop the records of steps after the checkpoint (lost work), as the resumed run replays them."""
    for path in key_dir.glob("keys-rank*.jsonl"):
        kept = [r for r in read_key_log(path) if r["step"] <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
