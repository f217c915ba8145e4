"""Pretraining through LightningCLI: typed validation of recipes, run directories, auto-resume."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from sslkit.callbacks.data_health import DataHealth
from sslkit.distributed.checkpoint_io import recover_checkpoint
from sslkit.distributed.environment import trainer_callbacks, trainer_plugins
from sslkit.distributed.precision import accept_auto, resolve_config_precision
from sslkit.distributed.preemption import EXIT_PREEMPTED, Preempted
from sslkit.objectives.base import SSLObjective
from sslkit.run_logs import ResumableCSVLogger

log = logging.getLogger(__name__)


class SSLCLI(LightningCLI):
    """LightningCLI with sslkit's run directory, checkpointing and loggers filled in.

    Every recipe key is validated against the typed constructors: a misspelled key fails with its name.
    """

    def __init__(self, *args: Any, run_dir: Path, **kwargs: Any) -> None:
        self.run_dir = Path(run_dir)
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(DataHealth, "data_health")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_top_k": 0})
        accept_auto(parser)  # `precision: auto` (recipes' default), resolved before instantiation

    def before_instantiate_classes(self) -> None:
        trainer = self.config.trainer
        resolve_config_precision(trainer)  # the saved config.yaml names the precision that ran
        if trainer.default_root_dir is None:
            trainer.default_root_dir = str(self.run_dir)
        self.run_dir = Path(trainer.default_root_dir)
        if self.config.checkpoint.dirpath is None:
            self.config.checkpoint.dirpath = str(self.run_dir / "checkpoints")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        if self.config.trainer.logger in (None, True):
            # CSV for scripts (eval report reads it), TensorBoard for people; both in the run dir.
            kwargs["logger"] = [
                ResumableCSVLogger(self.run_dir, name="", version=""),
                TensorBoardLogger(self.run_dir, name="tb", version=""),
            ]
        # Atomic checkpoint writes, SLURM without Lightning's in-handler requeue, preemption callback.
        kwargs["plugins"] = trainer_plugins(self.config_init.trainer.get("plugins"))
        kwargs["callbacks"] = trainer_callbacks(self.config_init.trainer.get("callbacks"))
        return super().instantiate_trainer(**kwargs)


def resolve_resume(resume: str, checkpoint_dir: Path) -> str | None:
    """``auto``: the run's ``last.ckpt`` when present (a requeued or re-launched job continues)."""
    if resume == "never":
        return None
    if resume == "auto":
        last = recover_checkpoint(checkpoint_dir / "last.ckpt")  # a DeepSpeed folder swap cut short
        return str(last) if last.exists() else None
    if not Path(resume).exists():
        raise FileNotFoundError(f"--resume {resume}: no such checkpoint")
    return resume


def build_cli(args: list[str], run_dir: Path) -> SSLCLI:
    """Parse and instantiate model, data and trainer from ``args`` without running anything."""
    return SSLCLI(
        SSLObjective,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=False,
        run_dir=run_dir,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )


def run_pretrain(args: list[str], run_dir: Path, resume: str = "auto") -> int:
    """Parse ``args`` (``--config merged.yaml`` + dotted overrides) and fit.

    Returns 0, or ``EXIT_PREEMPTED`` after a preemption signal was turned into a checkpoint.
    """
    cli = build_cli(args, run_dir)
    ckpt_path = resolve_resume(resume, Path(cli.config.checkpoint.dirpath))
    if ckpt_path:
        log.warning("resuming from %s", ckpt_path)
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    except Preempted as stop:
        log.warning("%s", stop)
        return EXIT_PREEMPTED
    return 0
