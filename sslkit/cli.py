"""sslkit: self-supervised pretraining for vision.

usage: sslkit [--version] [--debug] COMMAND [ARGS]

commands:
  quickstart   the embedded default run: SimCLR on scikit-learn's digits, CPU, a few minutes
  recipes      list the recipes (names for -c) and the objectives they use
  pretrain     train from a recipe: sslkit pretrain -c simclr/vit_tiny_cifar10 [--trainer.max_epochs=N ...]
  data         write and check WebDataset shards (sslkit data shard --source cifar10 ...)
  eval         frozen-feature evaluation: extract, knn, probe, report
  embed        a checkpoint's features of shards or an image folder, to .npy (+ keys) or .parquet
  slurm        render and submit an sbatch job for a recipe
  publish      a run as a folder that plain timm loads, with a model card

`sslkit COMMAND --help` shows each command's options. A mistake in what you typed is reported in one
line (exit 2); `--debug` (or SSLKIT_DEBUG=1) shows the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from sslkit.errors import EXIT_USER_ERROR, UserError, one_line

# Subcommands implemented by their own package: `sslkit data ...` -> sslkit.data.cli.main(argv).
_DELEGATES = {
    "data": "sslkit.data.cli",
    "embed": "sslkit.evaluation.embed",
    "eval": "sslkit.evaluation.cli",
    "slurm": "sslkit.distributed.slurm",
    "publish": "sslkit.publish.cli",
    "quickstart": "sslkit.quickstart",
}
RUN_DIR_FLAG = "--run-dir"


def _version() -> str:
    from sslkit.provenance import package_versions  # light: hashlib and importlib.metadata only

    return package_versions(("sslkit",))["sslkit"]


def _pretrain_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sslkit pretrain", add_help=False,
        usage="sslkit pretrain -c RECIPE [-c MORE ...] [options] [--SECTION.KEY=VALUE ...]",
        description="Train an objective from a recipe. Any recipe key can be overridden with a dotted flag, "
        "e.g. --trainer.max_epochs=20 --data.init_args.batch_size_per_device=128.",
        epilog="Lightning's and the recipe's own options (~600 lines): sslkit pretrain -c RECIPE --help-lightning; "
        "the resolved config: sslkit pretrain -c RECIPE --print_config. Recipes: sslkit recipes.",
    )
    parser.add_argument("-c", "--config", action="append", default=[], metavar="RECIPE",
                        help="recipe file or name (simclr/vit_tiny_cifar10); repeatable, later wins")
    parser.add_argument("--resume", default="auto", help="'auto': the run folder's last.ckpt if any; 'never'; or a checkpoint path (default: %(default)s)")
    parser.add_argument(RUN_DIR_FLAG, type=Path, default=None,
                        help="run folder (default: runs/<objective>/<recipe>/<SLURM job or time>)")
    parser.add_argument("--help-lightning", action="store_true", help="show Lightning's and the recipe's options")
    parser.add_argument("-h", "--help", action="store_true", help="show this help")
    return parser


def pretrain(argv: list[str], argv_is_sys: bool = False) -> int:
    """Merge the recipes, validate them with LightningCLI and fit (resuming the run folder's last checkpoint)."""
    parser = _pretrain_parser()
    args, rest = parser.parse_known_args(argv)
    if args.help or (not args.config and not args.help_lightning):
        parser.print_help()
        return 0 if args.help else EXIT_USER_ERROR
    from sslkit.config import load_recipes
    from sslkit.recipes import objective_name, resolve_recipe

    files = [resolve_recipe(name) for name in args.config]
    try:
        merged = load_recipes(files)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    from sslkit.run_dir import fingerprint, resolve_run_dir

    # A plain re-run of the same command (same recipe and overrides) finds its unfinished run and resumes it.
    run_dir = resolve_run_dir([str(f) for f in files], objective_name(merged), args.run_dir or os.environ.get("SSLKIT_RUN_DIR"),
                              args.resume, fingerprint(merged, rest))
    if argv_is_sys and args.run_dir is None:
        sys.argv += [RUN_DIR_FLAG, str(run_dir)]  # Lightning's DDP re-launch re-runs sys.argv: same folder
    if args.help_lightning:
        rest = ["--help", *rest]
    elif "--print_config" not in " ".join(rest) and os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"sslkit pretrain: run folder {run_dir}", file=sys.stderr, flush=True)
    from sslkit.console import quiet_lightning
    from sslkit.training import run_pretrain

    quiet_lightning()
    return run_pretrain(rest, run_dir, args.resume, recipe=merged, recipe_files=files, recipe_names=args.config)


def recipes(argv: list[str]) -> int:
    """``sslkit recipes``: the recipes and objectives."""
    from sslkit.recipes import list_recipes

    argparse.ArgumentParser(prog="sslkit recipes", description="List the recipes (names for -c).").parse_args(argv)
    print(list_recipes())
    return 0


def _take_debug(argv: list[str]) -> tuple[list[str], bool]:
    debug = os.environ.get("SSLKIT_DEBUG", "") not in ("", "0")
    if "--debug" in argv:
        argv = [a for a in argv if a != "--debug"]
        debug = True
    return argv, debug


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sslkit``; returns the exit code (2 for a user error, shown in one line)."""
    try:
        return _main(argv)
    except BrokenPipeError:  # `sslkit recipes | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # Ctrl-C: what was committed stays (a checkpoint, feature chunks); no traceback
        print("sslkit: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    argv_is_sys = argv is None
    argv, debug = _take_debug(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else EXIT_USER_ERROR
    if argv[0] in ("-V", "--version"):
        print(f"sslkit {_version()}")
        return 0
    command, rest = argv[0], argv[1:]
    commands: dict[str, Callable[[list[str]], int]] = {
        "pretrain": lambda a: pretrain(a, argv_is_sys), "recipes": recipes,
    }
    if command not in commands and command not in _DELEGATES:
        known = sorted([*commands, *_DELEGATES])
        print(f"sslkit: unknown command {command!r}; choose from {', '.join(known)} (sslkit --help)", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        if command in commands:
            return int(commands[command](rest) or 0)
        return int(importlib.import_module(_DELEGATES[command]).main(rest) or 0)
    except UserError as err:
        if debug:
            traceback.print_exc()
        print(f"sslkit {command}: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
