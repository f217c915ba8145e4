"""Atomic checkpoint writes: a checkpoint path holds either the previous complete checkpoint or the new one.

A job killed while writing (``kill -9``, SLURM's SIGKILL after ``KillWait``, a node failure) must not
leave a torn ``last.ckpt`` that the requeued job then fails to load. Files are written to a temporary
name in the same folder, flushed to disk and renamed over the target (``rename`` is atomic on POSIX
filesystems, Lustre and GPFS included). DeepSpeed checkpoints are folders, which ``rename`` cannot
replace atomically: they are written to ``<path>.tmp`` and swapped in with two renames, and
:func:`recover_checkpoint` repairs a kill between the two.

Reads are weights-only, always: :meth:`AtomicCheckpointIO.load_checkpoint` for Lightning files and
:func:`weights_only_torch_load` around DeepSpeed's own loader (resume of a ZeRO folder, conversion).
"""

from __future__ import annotations

import contextlib
import logging
import re
import functools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from sslkit.errors import RefusedInput

log = logging.getLogger(__name__)
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")

TMP_SUFFIX = ".tmp"
OLD_SUFFIX = ".old"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with temp-file + ``fsync`` + rename writes for local paths.

    Args:
        check: called as ``check(checkpoint, path)`` on every checkpoint read, before Lightning sees it; the
            training run passes :func:`sslkit.objectives.loading.checked_hyper_parameters` (injected so that
            ``distributed/`` knows nothing of objectives).
    """

    def __init__(self, check: Callable[[dict[str, Any], str], object] | None = None) -> None:
        super().__init__()
        self.check = check

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        bad = non_finite_tensors(checkpoint.get("state_dict", {}))
        if bad:  # a NaN/inf model must never replace last.ckpt, the one resume reads
            log.warning("not saving %s at step %s: %d of %d weight tensors are not finite (first: %s)", path,
                        checkpoint.get("global_step", "?"), len(bad), len(checkpoint["state_dict"]), bad[0])
            return
        if "://" in str(path):  # remote (fsspec) storage has its own semantics
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}{TMP_SUFFIX}-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Resume reads weights only, always, and refuses a checkpoint naming a class sslkit does not list.

        Lightning passes ``weights_only=None``, which torch resolves from the environment
        (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turns unpickling on); here it is ``True`` whatever the
        caller or the environment says. ``hyper_parameters`` go through ``check`` (in a training run: the
        same checks as ``load_objective``).
        """
        if "://" in str(path):
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=True)
        else:
            checkpoint = read_checkpoint(path)
        if self.check is not None and ("sslkit_objective" in checkpoint or "hyper_parameters" in checkpoint):
            self.check(checkpoint, str(path))
        return checkpoint


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary objects.

    Raises:
        RefusedInput: one line (a missing file, a folder, a file that is not a weights-only checkpoint).
    """
    path = Path(path)
    if path.is_dir():
        raise RefusedInput(
            f"{path} is a directory (a DeepSpeed checkpoint?): convert it first with "
            "`python -m sslkit.distributed.zero DIR OUT.ckpt` (or `sslkit publish DIR`, which converts it)"
        )
    if not path.exists():
        raise RefusedInput(f"{path}: no such checkpoint file (the checkpoint of a run is RUN_DIR/checkpoints/last.ckpt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch's message advises weights_only=False: never repeat it
        raise RefusedInput(
            f"refusing to load {path}: it is not a weights-only checkpoint ({unreadable_reason(err)}). sslkit never "
            "unpickles arbitrary objects; re-save it with tensors and plain types only."
        ) from None
    if not isinstance(ckpt, dict):
        raise RefusedInput(f"refusing to load {path}: it is not a weights-only checkpoint (it holds a {type(ckpt).__name__})")
    return ckpt


def unreadable_reason(err: Exception) -> str:
    """Why ``torch.load`` failed, in a few words and without torch's unsafe advice."""
    found = _GLOBAL.search(str(err))
    if found:
        return f"it pickles {found.group(1)}, which is not plain data"
    if isinstance(err, OSError):
        return f"unreadable: {err.strerror or type(err).__name__}"
    return "not a torch checkpoint file: truncated, corrupt or another format"


def non_finite_tensors(state_dict: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors in ``state_dict`` holding a NaN or an infinity."""
    return [name for name, value in state_dict.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def deepspeed_safe_globals() -> list[Any]:
    """DeepSpeed's plain classes that appear in its checkpoints (enums, loss scalers)."""
    allowed: list[Any] = []
    with contextlib.suppress(Exception):
        from deepspeed.runtime.zero.config import ZeroStageEnum

        allowed.append(ZeroStageEnum)
    with contextlib.suppress(Exception):
        from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler

        allowed += [LossScaler, DynamicLossScaler]
    with contextlib.suppress(Exception):
        from deepspeed.utils.tensor_fragment import fragment_address  # optimizer-state bookkeeping (resume)

        allowed.append(fragment_address)
    return allowed


@contextlib.contextmanager
def weights_only_torch_load(allowed: list[Any]) -> Iterator[None]:
    """Within the block, every ``torch.load`` call is ``weights_only=True`` (``allowed`` classes added)."""
    original = torch.load

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        with torch.serialization.safe_globals(allowed):
            return original(*args, **kwargs)

    torch.load = guarded  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.load = original  # type: ignore[assignment]


def replace_dir(src: Path, dst: Path) -> None:
    """Move the complete folder ``src`` to ``dst``, replacing a previous ``dst``."""
    old = dst.with_name(dst.name + OLD_SUFFIX)
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)  # a kill between the two renames is repaired by recover_checkpoint
    _fsync_dir(dst.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_checkpoint(path: str | Path) -> Path:
    """Repair a folder checkpoint whose swap in :func:`replace_dir` was interrupted; returns ``path``.

    ``<path>.old`` exists without ``<path>`` only between the two renames, when ``<path>.tmp`` is
    already complete (it is renamed only after every rank finished writing).
    """
    path = Path(path)
    old, tmp = path.with_name(path.name + OLD_SUFFIX), path.with_name(path.name + TMP_SUFFIX)
    if not path.exists() and old.is_dir():
        try:
            os.replace(tmp if tmp.is_dir() else old, path)
        except FileNotFoundError:  # another rank repaired it first
            pass
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
