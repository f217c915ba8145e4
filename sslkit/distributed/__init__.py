"""Distributed training on Lightning, DeepSpeed and SLURM: strategies, preemption, checkpoints, gathers."""

from sslkit.distributed.checkpoint_io import AtomicCheckpointIO, recover_checkpoint
from sslkit.distributed.environment import trainer_callbacks, trainer_plugins
from sslkit.distributed.preemption import EXIT_PREEMPTED, Preempted, PreemptionCheckpoint

__all__ = [
    "EXIT_PREEMPTED",
    "AtomicCheckpointIO",
    "Preempted",
    "PreemptionCheckpoint",
    "recover_checkpoint",
    "trainer_callbacks",
    "trainer_plugins",
]
