"""Run folder: lock, stale temp checkpoints, torn last.ckpt fallback, finding the run a re-run continues."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sslkit.errors import UserError
from sslkit.run_dir import (
    RunLock, fingerprint, mark_finished, remove_stale_temporaries, resolve_run_dir, resumable_checkpoint,
    write_fingerprint,
)


def test_second_process_fails_naming_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from sslkit.run_dir import RunLock\n"
        f"with RunLock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError) as err:
            RunLock(tmp_path).__enter__()
        message = str(err.value)
        assert f"pid {holder.pid} on {socket.gethostname()}" in message and "\n" not in message
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path):  # the kernel released the dead holder's lock
        assert f"pid {os.getpid()}" in (tmp_path / ".lock").read_text()


def test_stale_temporaries_removed(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / ".last.ckpt.tmp-1234").write_bytes(b"x" * 100)
    (ckpt / "last.ckpt.tmp").mkdir()
    (ckpt / "last.ckpt").write_bytes(b"keep")
    removed = remove_stale_temporaries(ckpt)
    assert sorted(p.name for p in removed) == [".last.ckpt.tmp-1234", "last.ckpt.tmp"]
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.ckpt"]


def test_torn_last_falls_back_to_newest_good(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for step in (3, 6):
        torch.save({"global_step": step}, tmp_path / f"step={step}.ckpt")
        time.sleep(0.01)
    torch.save({"global_step": 9}, tmp_path / "last.ckpt")
    assert resumable_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    torn = (tmp_path / "last.ckpt").read_bytes()
    (tmp_path / "last.ckpt").write_bytes(torn[: len(torn) // 2])
    with caplog.at_level("WARNING"):
        assert resumable_checkpoint(tmp_path) == tmp_path / "step=6.ckpt"
    assert len(caplog.records) == 1 and "torn" in caplog.text and "step=6.ckpt" in caplog.text


def test_rerun_finds_the_unfinished_run_with_the_same_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    key = fingerprint({"model": 1}, ["--trainer.max_epochs=2"])
    first = resolve_run_dir(["recipes/simclr/tiny.yaml"], "simclr", resume="auto", config_fingerprint=key, root=tmp_path)
    assert first.parent == tmp_path / "simclr" / "tiny"
    (first / "checkpoints").mkdir(parents=True)
    write_fingerprint(first, key)
    again = resolve_run_dir(["recipes/simclr/tiny.yaml"], "simclr", config_fingerprint=key, root=tmp_path)
    assert again == first
    other = fingerprint({"model": 2}, ["--trainer.max_epochs=2"])
    assert resolve_run_dir(["tiny.yaml"], "simclr", config_fingerprint=other, root=tmp_path) != first
    assert resolve_run_dir(["tiny.yaml"], "simclr", resume="never", config_fingerprint=key, root=tmp_path) != first
    mark_finished(first)
    assert resolve_run_dir(["tiny.yaml"], "simclr", config_fingerprint=key, root=tmp_path) != first
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert resolve_run_dir(["tiny.yaml"], "simclr", root=tmp_path) == tmp_path / "simclr" / "tiny" / "job77"
    assert resolve_run_dir(["tiny.yaml"], "simclr", explicit_dir=tmp_path / "x") == tmp_path / "x"
