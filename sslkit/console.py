"""What a run prints: Lightning's messages a user cannot act on are filtered where they are emitted.

:func:`quiet_lightning` is called once by the ``sslkit`` entry point (never at import time). It names each
message it drops: a logging filter on Lightning's own loggers for its info lines, and one
``warnings`` filter per specific warning text (no blanket suppression: any other warning still shows).
"""

from __future__ import annotations

import logging
import re
import warnings

# Lightning info lines (rank_zero_info / log.info) that carry no information for an sslkit user.
_DROPPED_INFO = (
    "💡 Tip",                                 # litlogger / litmodels advertisement
    "TPU available", "HPU available",         # hardware that this run does not use
    "Loading `train_dataloader` to estimate",  # the optimizer's schedule asks for the step count
    "`weights_only` was not set",              # sslkit reads checkpoints itself, weights only
    "Seed set to",                             # the seed is in the saved config.yaml
)
# Warnings that describe sslkit's own, deliberate set-up (message regexes, matched at the start).
_DROPPED_WARNINGS = (
    r"You passed in a `val_dataloader` but have no `validation_step`",  # val shards feed the online monitors
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",                 # Lightning vs torch version skew
    r"Your `IterableDataset` has `__len__` defined",                     # ShardDataModule shards per worker
    r"The `srun` command is available on your system but is not used",   # sslkit's own SLURM launcher
    r"The number of training batches \(\d+\) is smaller than the logging interval",  # LogLastStep logs it
)
_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning")


class _DropMessages(logging.Filter):
    """Drops records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).lstrip().startswith(self.prefixes)


def quiet_lightning() -> None:
    """Install the filters (idempotent). Call after importing Lightning: it adds its handlers on import."""
    drop = _DropMessages(_DROPPED_INFO)
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        # A handler's filter sees the records of every child logger (lightning.pytorch.utilities...).
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, _DropMessages) for f in target.filters):
                target.addFilter(drop)
    for pattern in _DROPPED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def matches_dropped_warning(message: str) -> bool:
    """Whether ``message`` is one of the warnings :func:`quiet_lightning` drops (for tests)."""
    return any(re.match(p, message) for p in _DROPPED_WARNINGS)
