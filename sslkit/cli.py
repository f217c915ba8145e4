"""The ``sslkit`` command: the only place where a whole configuration lives.

    sslkit quickstart                      embedded default run on scikit-learn's digits
    sslkit pretrain -c RECIPE [-c MORE] [--trainer.max_epochs=N ...]
    sslkit data shard ...                  write WebDataset shards
    sslkit eval {extract,knn,probe,report} ...
    sslkit slurm submit ...
    sslkit publish ...
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from sslkit.config import load_recipes

# Subcommands implemented by their own package: `sslkit data ...` -> sslkit.data.cli.main(argv).
_DELEGATES = {
    "data": "sslkit.data.cli",
    "eval": "sslkit.evaluation.cli",
    "slurm": "sslkit.distributed.slurm",
    "publish": "sslkit.publish.cli",
}


def _run_dir_default(recipes: list[str]) -> Path:
    """``runs/<recipe>/<job id or time>``; fixed once per launch so DDP workers and requeues agree."""
    if os.environ.get("SSLKIT_RUN_DIR"):
        return Path(os.environ["SSLKIT_RUN_DIR"])
    name = Path(recipes[-1]).stem if recipes else "run"
    if os.environ.get("SLURM_ARRAY_JOB_ID"):  # each array task its own run (and requeue target)
        key = f"job{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    elif os.environ.get("SLURM_JOB_ID"):
        key = f"job{os.environ['SLURM_JOB_ID']}"
    elif os.environ.get("TORCHELASTIC_RUN_ID"):  # the same on every torchrun worker and restart
        key = f"torchrun-{os.environ['TORCHELASTIC_RUN_ID']}"
    else:
        key = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path("runs") / name / key
    os.environ["SSLKIT_RUN_DIR"] = str(run_dir)  # inherited by Lightning's DDP re-launches
    return run_dir


def pretrain(argv: list[str]) -> int:
    """Validate a layered recipe with LightningCLI, then fit, resuming from the run's last checkpoint."""
    parser = argparse.ArgumentParser(prog="sslkit pretrain", add_help=False)
    parser.add_argument("-c", "--config", action="append", default=[], help="recipe YAML (repeatable, later wins)")
    parser.add_argument("--resume", default="auto", help="'auto' (last.ckpt of the run dir), 'never', or a path")
    parser.add_argument("-h", "--help", action="store_true")
    args, rest = parser.parse_known_args(argv)
    if args.help:
        print(__doc__)
        rest = ["--help", *rest]
    merged = load_recipes(args.config)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="sslkit-recipe-", delete=False) as f:
        yaml.safe_dump(merged, f, sort_keys=False)
    try:
        from sslkit.training import run_pretrain

        return run_pretrain(["--config", f.name, *rest], _run_dir_default(args.config), args.resume)
    finally:
        os.unlink(f.name)


def quickstart(argv: list[str]) -> int:
    from sslkit.quickstart import main as quickstart_main

    return quickstart_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, Any] = {"pretrain": pretrain, "quickstart": quickstart}
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command in commands:
        return int(commands[command](rest) or 0)
    if command in _DELEGATES:
        return int(importlib.import_module(_DELEGATES[command]).main(rest) or 0)
    print(f"sslkit: unknown command {command!r}; choose from {sorted([*commands, *_DELEGATES])}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
