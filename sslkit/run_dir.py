"""The run folder: where it is, who holds it, and what a restart finds in it.

Layout: ``runs/<objective>/<recipe>/<key>``, ``key`` the SLURM job (``job123``, ``job123_4`` for an
array task), the torchrun run id, or the start time (``20260101-120000``). Inside: the resolved config,
``checkpoints/`` (``last.ckpt`` and the periodic ones), ``metrics.csv``, ``tb/``, and three small files
of this module's: ``.lock`` (held while a process trains), ``.fingerprint`` (the recipe and overrides
the run was started with) and ``.finished`` (written when training ends normally).

Re-running the same command resumes the same run: under SLURM or torchrun the key is the same on
a requeue or restart. Outside them :func:`resolve_run_dir` picks the newest *unfinished* run folder of
that recipe whose fingerprint matches (the same recipe files and overrides), so a run stopped by
Ctrl-C, ``kill`` or a crash continues where it stopped; ``--resume never`` starts a new folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from sslkit.errors import UserError

log = logging.getLogger(__name__)

LOCK_NAME, FINGERPRINT_NAME, FINISHED_NAME = ".lock", ".fingerprint", ".finished"


def run_key() -> str:
    """The SLURM job (array task), the torchrun run id, else the current time."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"job{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"job{os.environ['SLURM_JOB_ID']}"
    if os.environ.get("TORCHELASTIC_RUN_ID"):
        return f"torchrun-{os.environ['TORCHELASTIC_RUN_ID']}"
    return time.strftime("%Y%m%d-%H%M%S")


def fingerprint(recipe: Any, overrides: Sequence[str] = ()) -> str:
    """A short digest of the merged recipe and the command-line overrides: "the same config"."""
    text = json.dumps({"recipe": recipe, "overrides": list(overrides)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_run_dir(recipe_paths: Sequence[str | Path], objective_name: str, explicit_dir: str | Path | None = None,
                    resume: str = "auto", config_fingerprint: str | None = None, root: str | Path = "runs") -> Path:
    """The run folder of an ``sslkit pretrain`` command.

    Args:
        recipe_paths: the recipe files (the last names the run).
        objective_name: the objective's name (``simclr``).
        explicit_dir: ``--run-dir`` or ``$SSLKIT_RUN_DIR``; used as is.
        resume: ``"never"`` always makes a new folder; otherwise a plain re-run (no SLURM job, no
            torchrun) finds the newest unfinished folder of the recipe with the same fingerprint.
        config_fingerprint: :func:`fingerprint` of the merged recipe and overrides.
        root: the folder above ``<objective>`` (``runs``).

    Returns:
        ``<root>/<objective>/<recipe>/<key>`` (see the module docstring); not created here.
    """
    if explicit_dir:
        return Path(explicit_dir)
    name = Path(recipe_paths[-1]).stem if recipe_paths else "run"
    parent = Path(root) / objective_name / name
    key = run_key()
    cluster = any(os.environ.get(v) for v in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "TORCHELASTIC_RUN_ID"))
    if resume != "never" and not cluster and config_fingerprint is not None:
        previous = newest_unfinished(parent, config_fingerprint)
        if previous is not None:
            return previous
    folder, n = parent / key, 1
    while not cluster and folder.exists():  # two runs started in the same second
        n += 1
        folder = parent / f"{key}-{n}"
    return folder


def newest_unfinished(parent: Path, config_fingerprint: str) -> Path | None:
    """The newest run folder under ``parent`` with this fingerprint, a checkpoint and no ``.finished``."""
    if not parent.is_dir():
        return None
    found = []
    for folder in parent.iterdir():
        marker = folder / FINGERPRINT_NAME
        if (folder / FINISHED_NAME).exists() or not marker.is_file() or not (folder / "checkpoints").is_dir():
            continue
        if marker.read_text().strip() == config_fingerprint:
            found.append((marker.stat().st_mtime, folder))
    return max(found)[1] if found else None


def is_launching_process() -> bool:
    """Rank 0 of the job: the process that owns the run folder (other ranks only write checkpoint shards)."""
    return all(os.environ.get(v, "0") == "0" for v in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"))


class RunLock:
    """An exclusive ``fcntl`` lock on ``<run_dir>/.lock``, naming its holder (pid, host) in the file.

    The kernel drops the lock when the holder dies (even by ``kill -9``), so a stale file never blocks.

    Raises:
        UserError: on entering, when another process holds the folder.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._file: IO[str] | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"{self.path.parent}: run folder in use by {holder}; wait for it to finish, stop it,"
                            " or give another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None


def remove_stale_temporaries(checkpoint_dir: str | Path) -> list[Path]:
    """Delete temp checkpoints left by a writer killed mid-save (``.<name>.tmp-<pid>``, ``<name>.tmp``).

    Call it holding the :class:`RunLock` (no writer is alive then), after
    :func:`~sslkit.distributed.checkpoint_io.recover_checkpoint` repaired an interrupted folder swap.
    """
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if (path.name.startswith(".") and ".tmp-" in path.name) or path.name.endswith((".tmp", ".old")):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.warning("removed %d stale temporary checkpoint(s) in %s: %s", len(removed), folder,
                    ", ".join(p.name for p in removed))
    return removed


def is_complete_checkpoint(path: str | Path) -> bool:
    """A checkpoint file is a complete zip (``torch.save``'s format); a folder (DeepSpeed) is trusted."""
    path = Path(path)
    if path.is_dir():
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def resumable_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """``last.ckpt``, or, when it is torn, the newest complete checkpoint beside it (said in one line)."""
    folder = Path(checkpoint_dir)
    last = folder / "last.ckpt"
    if not last.exists():
        return None
    if is_complete_checkpoint(last):
        return last
    others = sorted((p for p in folder.glob("*.ckpt") if p != last and is_complete_checkpoint(p)),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    fallback = others[0] if others else None
    log.warning("%s is torn (not a complete checkpoint); %s", last,
                f"resuming from {fallback} instead" if fallback else "no other checkpoint: starting afresh")
    return fallback


def mark_finished(run_dir: str | Path) -> None:
    """Record that training ended normally (a plain re-run then starts a new folder)."""
    (Path(run_dir) / FINISHED_NAME).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))


def write_fingerprint(run_dir: str | Path, config_fingerprint: str) -> None:
    path = Path(run_dir) / FINGERPRINT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_fingerprint + "\n")
