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
:class:`~sslkit.distributed.preemption.PreemptionCheckpoint` replaces it), that callback, and the
non-finite-loss policy (:class:`~sslkit.callbacks.nonfinite.NonFiniteLoss`).
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import torch.distributed as dist
from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins import TorchSyncBatchNorm
from lightning.pytorch.plugins.io import CheckpointIO
from torch import nn

from sslkit.callbacks.nonfinite import NonFiniteLoss
from sslkit.distributed.checkpoint_io import AtomicCheckpointIO
from sslkit.distributed.preemption import PreemptionCheckpoint


log = logging.getLogger(__name__)


class SyncBatchNormOnGPU(TorchSyncBatchNorm):
    """``sync_batchnorm`` where PyTorch supports it: NCCL process groups (GPUs).

    PyTorch's DDP rejects ``SyncBatchNorm`` on CPU modules ("SyncBatchNorm layers only work with GPU
    modules"), so with gloo the BatchNorm layers stay per-rank (statistics over the local batch) and
    a warning says so. Used by ``recipes/_base/trainer/ddp.yaml`` so one layer serves CPUs and GPUs.
    """

    def apply(self, model: nn.Module) -> nn.Module:
        if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
            return super().apply(model)
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            log.warning("BatchNorm stays per-rank: PyTorch has no SyncBatchNorm for %s", dist.get_backend()
                        if dist.is_initialized() else "a single process")
        return model


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def trainer_plugins(plugins: Any = None, checkpoint_check: Any = None) -> list[Any]:
    """``plugins`` plus :class:`AtomicCheckpointIO` (reading through ``checkpoint_check``) and, inside SLURM,
    ``SLURMEnvironment(auto_requeue=False)``."""
    out = _as_list(plugins)
    if not any(isinstance(p, CheckpointIO) for p in out):
        out.append(AtomicCheckpointIO(check=checkpoint_check))
    if SLURMEnvironment.detect() and not any(isinstance(p, ClusterEnvironment) for p in out):
        out.append(SLURMEnvironment(auto_requeue=False, requeue_signal=signal.SIGUSR1))
    return out


def trainer_callbacks(callbacks: Any = None) -> list[Callback]:
    """``callbacks`` plus a :class:`PreemptionCheckpoint` and a :class:`NonFiniteLoss`, unless there.

    A recipe sets its own non-finite policy by listing ``sslkit.callbacks.nonfinite.NonFiniteLoss``
    (``max_consecutive``) in ``trainer.callbacks``.
    """
    out = _as_list(callbacks)
    if not any(isinstance(c, PreemptionCheckpoint) for c in out):
        out.append(PreemptionCheckpoint())
    if not any(isinstance(c, NonFiniteLoss) for c in out):
        out.append(NonFiniteLoss())
    return out
