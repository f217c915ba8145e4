"""``sslkit slurm submit``: render an sbatch template from ``slurm/`` and submit it.

    sslkit slurm submit -c RECIPE [-c LAYER ...] --nodes N --gpus-per-node G [options] [--dotted.overrides]

The merged recipe is frozen into ``<runs>/<name>/recipe-<time>.yaml`` (a requeued job reruns exactly
what was submitted); the job writes to ``<runs>/<name>/job<SLURM_JOB_ID>`` (``SSLKIT_RUN_DIR``), so
a requeue finds its ``checkpoints/last.ckpt`` and ``sslkit pretrain --resume auto`` continues there.
``--dry-run`` prints the script and writes nothing.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sslkit.config import load_recipes

TEMPLATES = Path(__file__).resolve().parents[2] / "slurm"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(template: str, values: dict[str, object]) -> str:
    """Fill ``{{name}}`` placeholders; an unknown or missing name raises ``KeyError``."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise KeyError(f"template placeholders without a value: {missing}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslkit slurm submit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", action="append", required=True, help="recipe YAML (repeatable, later wins)")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=1, help="0 runs on CPUs (--trainer.accelerator=cpu)")
    parser.add_argument("--ntasks-per-node", type=int, help="ranks per node (default: one per GPU, 1 without GPUs)")
    parser.add_argument("--cpus-per-task", type=int, default=8, help="CPU cores per rank (data loading workers)")
    parser.add_argument("--time", default="24:00:00", help="time limit of one run of the job (HH:MM:SS)")
    parser.add_argument("--signal-seconds", type=int, default=180,
                        help="USR1 this long before the time limit: time for one step and one checkpoint")
    parser.add_argument("--partition")
    parser.add_argument("--account")
    parser.add_argument("--qos")
    parser.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                        help="extra #SBATCH option, e.g. --sbatch=--constraint=a100 (repeatable)")
    parser.add_argument("--name", help="run name (default: the first recipe's file name)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="parent folder of run folders")
    parser.add_argument("--template", type=Path, help="sbatch template (default: slurm/{single,multi}_node.sbatch)")
    parser.add_argument("--python", default=sys.executable, help="interpreter the job runs sslkit with")
    parser.add_argument("--dry-run", action="store_true", help="print the script, write and submit nothing")
    return parser


def render_job(args: argparse.Namespace, overrides: list[str], recipe_path: Path) -> str:
    """The sbatch script for parsed ``args``, the frozen recipe at ``recipe_path`` and ``overrides``."""
    tasks = args.ntasks_per_node or max(args.gpus_per_node, 1)
    if args.gpus_per_node and tasks != args.gpus_per_node:
        raise ValueError(f"--ntasks-per-node {tasks} != --gpus-per-node {args.gpus_per_node}: one rank per GPU")
    lines = [f"#SBATCH --gpus-per-node={args.gpus_per_node}"] if args.gpus_per_node else []
    lines += [f"#SBATCH --{k}={v}" for k, v in (("partition", args.partition), ("account", args.account),
                                                 ("qos", args.qos)) if v]
    lines += [f"#SBATCH {opt}" for opt in args.sbatch]
    trainer_args = [] if args.gpus_per_node else ["--trainer.accelerator=cpu"]
    template = args.template or TEMPLATES / ("single_node.sbatch" if args.nodes == 1 else "multi_node.sbatch")
    name = args.name or Path(args.config[0]).stem
    return render(Path(template).read_text(), {
        "job_name": name, "nodes": args.nodes, "ntasks_per_node": tasks, "cpus_per_task": args.cpus_per_task,
        "time": args.time, "signal_seconds": args.signal_seconds, "sbatch_lines": "\n".join(lines),
        "runs_dir": (args.runs / name).resolve(), "python": shlex.quote(args.python),
        "recipe_args": f"-c {shlex.quote(str(recipe_path))}",
        "trainer_args": " ".join(shlex.quote(a) for a in [*trainer_args, *overrides]),
    })


def submit(argv: list[str]) -> int:
    args, overrides = build_parser().parse_known_args(argv)
    bad = [o for o in overrides if not o.startswith("--")]
    if bad:
        print(f"sslkit slurm submit: unexpected arguments {bad}; overrides look like --trainer.max_epochs=10",
              file=sys.stderr)
        return 2
    merged = load_recipes(args.config)  # fail here, not in the queue, on a missing recipe or base
    name = args.name or Path(args.config[0]).stem
    runs_dir = (args.runs / name).resolve()
    recipe_path = runs_dir / f"recipe-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    script = render_job(args, overrides, recipe_path)
    if args.dry_run:
        print(script)
        return 0
    runs_dir.mkdir(parents=True, exist_ok=True)
    recipe_path.write_text(yaml.safe_dump(merged, sort_keys=False))
    script_path = recipe_path.with_suffix(".sbatch")
    script_path.write_text(script)
    result = subprocess.run(["sbatch", "--parsable", str(script_path)], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"sbatch failed: {result.stderr.strip()}", file=sys.stderr)
        return result.returncode
    job_id = result.stdout.strip().split(";")[0]
    print(f"submitted job {job_id}\n  run dir: {runs_dir / f'job{job_id}'}\n  log:     {runs_dir / f'slurm-{job_id}.out'}")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if argv[0] == "submit":
        return submit(argv[1:])
    print(f"sslkit slurm: unknown command {argv[0]!r}; choose from ['submit']", file=sys.stderr)
    return 2
