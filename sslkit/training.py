"""Pretraining through LightningCLI: typed validation of recipes, run directories, auto-resume."""

from __future__ import annotations

import contextlib
import logging
import shlex
import sys
from argparse import ArgumentError
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from sslkit.callbacks.data_health import DataHealth
from sslkit.callbacks.online_knn import OnlineKNNSettings
from sslkit.callbacks.run_record import CheckData, LogLastStep, RunRecorder
from sslkit.config import refuse_yaml_bombs
from sslkit.distributed.checkpoint_io import recover_checkpoint
from sslkit.distributed.environment import trainer_callbacks, trainer_plugins
from sslkit.distributed.precision import accept_auto, resolve_config_precision
from sslkit.distributed.preemption import EXIT_PREEMPTED, Preempted
from sslkit.errors import UserError
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.loading import checked_hyper_parameters
from sslkit.preflight import check_sizes, run_record
from sslkit.recipes import explain_parse_error
from sslkit.run_dir import (
    RunLock, fingerprint, is_launching_process, mark_finished, remove_stale_temporaries, resumable_checkpoint,
    write_fingerprint,
)
from sslkit.run_logs import ResumableCSVLogger

log = logging.getLogger(__name__)


class SSLCLI(LightningCLI):
    """LightningCLI with sslkit's run directory, checkpointing and loggers filled in.

    Every recipe key is validated against the typed constructors: a misspelled key fails with its name.
    """

    def __init__(
        self, *args: Any, run_dir: Path, recipe: dict[str, Any] | None = None,
        recipe_files: Sequence[Path] = (), recipe_names: Sequence[str] = (), **kwargs: Any,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.recipe, self.recipe_files = recipe, [Path(p) for p in recipe_files]
        self.recipe_names = list(recipe_names) or [str(p) for p in self.recipe_files]
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """The merged recipe goes in as a YAML string (no temp file); a bad key becomes one-line UserError."""
        overrides = [str(a) for a in args or []]
        refuse_yaml_bombs(overrides)
        argv = ["--config", yaml.safe_dump(self.recipe, sort_keys=False)] if self.recipe is not None else []
        try:
            self.config = parser.parse_args([*argv, *overrides])
        except ArgumentError as err:
            line = explain_parse_error(str(err), self.recipe or {}, self.recipe_files, overrides)
            where = str(self.recipe_files[-1]) if self.recipe_files else "command line"
            raise UserError(line or f"{where}: {' '.join(str(err).split())[:400]}") from err

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(DataHealth, "data_health")
        parser.add_class_arguments(OnlineKNNSettings, "online_knn")  # on when the data sets val_shards
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
        check_sizes(self.config.model, self.config.data)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        if self.config.trainer.logger in (None, True):
            # CSV for scripts (eval report reads it), TensorBoard for people; both in the run dir.
            kwargs["logger"] = [
                ResumableCSVLogger(self.run_dir, name="", version=""),
                TensorBoardLogger(self.run_dir, name="tb", version=""),
            ]
        # Atomic checkpoint writes, SLURM without Lightning's in-handler requeue, preemption callback.
        kwargs["plugins"] = trainer_plugins(self.config_init.trainer.get("plugins"), checked_hyper_parameters)
        kwargs["callbacks"] = [
            *trainer_callbacks(self.config_init.trainer.get("callbacks")),
            RunRecorder(run_record(self.config.model, self.config.data, self.recipe_names, str(self.run_dir)),
                        self.run_dir),
            LogLastStep(),
            CheckData(self.config.data),
        ]
        online_knn = self.config_init.online_knn.callback(self.datamodule)
        if online_knn is not None:
            kwargs["callbacks"].append(online_knn)
        return super().instantiate_trainer(**kwargs)


def resolve_resume(resume: str, checkpoint_dir: Path) -> str | None:
    """``auto``: the run's ``last.ckpt`` when present (a requeued or re-launched job continues).

    A torn ``last.ckpt`` (not a complete checkpoint) falls back to the newest complete checkpoint
    beside it, said in one line.
    """
    if resume == "never":
        return None
    if resume == "auto":
        recover_checkpoint(checkpoint_dir / "last.ckpt")  # a DeepSpeed folder swap cut short
        found = resumable_checkpoint(checkpoint_dir)
        return str(found) if found else None
    if not Path(resume).exists():
        raise FileNotFoundError(f"--resume {resume}: no such checkpoint")
    return resume


def build_cli(
    args: list[str], run_dir: Path, recipe: dict[str, Any] | None = None, recipe_files: Sequence[Path] = (),
    recipe_names: Sequence[str] = (),
) -> SSLCLI:
    """Parse and instantiate model, data and trainer without running anything.

    Args:
        args: dotted overrides (``--trainer.max_epochs=2``; ``--config FILE`` also works).
        run_dir: the run folder (config, checkpoints, logs, ``run.json``).
        recipe: the merged recipe (``sslkit.config.load_recipes``), given to the parser as a YAML string.
        recipe_files: the recipe files it came from (named in errors about its keys).
        recipe_names: what the user called them (recorded in the run record).
    """
    return SSLCLI(
        SSLObjective,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=False,
        run_dir=run_dir,
        recipe=recipe,
        recipe_files=recipe_files,
        recipe_names=recipe_names,
        parser_kwargs={"exit_on_error": False},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )


def run_pretrain(args: list[str], run_dir: Path, resume: str = "auto", **cli_kwargs: Any) -> int:
    """Parse ``args`` (``--config merged.yaml`` + dotted overrides) and fit.

    Rank 0 holds the run folder's lock while it trains (a second process fails in one line), removes
    temp checkpoints a killed writer left, and at a stop signal prints the command that resumes.

    Returns 0, or ``EXIT_PREEMPTED`` after a preemption signal was turned into a checkpoint.
    """
    cli = build_cli(args, run_dir, **cli_kwargs)  # recipe=, recipe_files=, recipe_names=
    checkpoint_dir = Path(cli.config.checkpoint.dirpath)
    owner = is_launching_process()
    with RunLock(cli.run_dir) if owner else contextlib.nullcontext():
        if owner:
            recover_checkpoint(checkpoint_dir / "last.ckpt")
            remove_stale_temporaries(checkpoint_dir)
            write_fingerprint(cli.run_dir, fingerprint(cli_kwargs.get("recipe"), args))
        ckpt_path = resolve_resume(resume, checkpoint_dir)
        if ckpt_path:
            log.warning("resuming from %s", ckpt_path)
        try:
            cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        except Preempted as stop:
            log.warning("%s", stop)
            if owner:
                print(f"sslkit pretrain: stopped; resume with: {resume_command(cli.run_dir)}", file=sys.stderr,
                      flush=True)
            return EXIT_PREEMPTED
        if owner:
            mark_finished(cli.run_dir)
    return 0


def resume_command(run_dir: Path) -> str:
    """The command line of this process, as ``sslkit ...``, pinned to ``run_dir``."""
    argv = list(sys.argv[1:])
    if "--run-dir" not in argv and not any(a.startswith("--run-dir=") for a in argv):
        argv += ["--run-dir", str(run_dir)]
    return " ".join(shlex.quote(a) for a in ["sslkit", *argv])
