"""How one ``sslkit pretrain`` command runs under ``srun``, ``torchrun`` and as a single process.

Lightning chooses the cluster environment from the process's environment variables; sslkit adds
no launcher of its own:

- ``srun`` (SLURM, one task per device): ``SLURMEnvironment`` reads ``SLURM_PROCID``,
  ``SLURM_LOCALID``, ``SLURM_NTASKS`` and the first host of ``SLURM_NODELIST``;
  ``trainer.num_nodes`` x ``trainer.devices`` must equal the number of tasks.
- ``torchrun`` (or any launcher setting ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``):
  ``TorchElasticEnvironment``.
- a plain process: ``LightningEnvironment``; with ``devices > 1`` Lightning starts the other ranks.

:func:`trainer_plugins` and :func:`trainer_callbacks` add, unless a recipe already set them: atomic
checkpoint writes, Lightning's SLURM environment *without* its in-handler auto-requeue (sslkit's
:class:`~sslkit.distributed.preemption.PreemptionCheckpoint` replaces it), and that callback.
"""

from __future__ import annotations

import signal
from typing import Any

from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import CheckpointIO

from sslkit.distributed.checkpoint_io import AtomicCheckpointIO
from sslkit.distributed.preemption import PreemptionCheckpoint


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def trainer_plugins(plugins: Any = None) -> list[Any]:
    """``plugins`` plus :class:`AtomicCheckpointIO` and, inside SLURM, ``SLURMEnvironment(auto_requeue=False)``."""
    out = _as_list(plugins)
    if not any(isinstance(p, CheckpointIO) for p in out):
        out.append(AtomicCheckpointIO())
    if SLURMEnvironment.detect() and not any(isinstance(p, ClusterEnvironment) for p in out):
        out.append(SLURMEnvironment(auto_requeue=False, requeue_signal=signal.SIGUSR1))
    return out


def trainer_callbacks(callbacks: Any = None) -> list[Callback]:
    """``callbacks`` plus a :class:`PreemptionCheckpoint` unless one is there."""
    out = _as_list(callbacks)
    if not any(isinstance(c, PreemptionCheckpoint) for c in out):
        out.append(PreemptionCheckpoint())
    return out
