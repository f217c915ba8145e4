"""``sslkit slurm submit``: render an sbatch template (package data) and submit it.

    sslkit slurm submit -c RECIPE [-c LAYER ...] --nodes N --gpus-per-node G [--strategy ddp] [options]
                        [--dotted.overrides]

The merged recipe is frozen into ``<runs>/<objective>/<recipe>/recipe-<time>.yaml`` (a requeued job
reruns exactly what was submitted); the job (SLURM name ``<objective>-<recipe>``) writes to
``.../job<SLURM_JOB_ID>`` (``SSLKIT_RUN_DIR``), so a requeue finds its ``checkpoints/last.ckpt`` and
``sslkit pretrain --resume auto`` continues there. Nothing of the submitting machine is baked in: the
job runs ``--python`` (default ``python3`` on the node's ``PATH``) after the ``--setup`` lines (module
loads, venv activation), in ``--chdir`` (default: the submit folder, so relative shard paths resolve on
every node). ``--dry-run`` prints the script and writes nothing; a failed ``sbatch`` leaves nothing.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sslkit.config import load_recipes
from sslkit.errors import UserError

PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
STRATEGIES = {  # --strategy NAME -> recipes/_base/trainer/<layer>.yaml
    "ddp": "ddp", "zero1": "deepspeed_zero1", "zero2": "deepspeed_zero2", "zero3": "deepspeed_zero3",
    "zero2_offload": "deepspeed_zero2_offload", "zero3_offload": "deepspeed_zero3_offload",
}


def template_path(nodes: int) -> Path:
    """The packaged template for ``nodes`` (``sslkit/distributed/sbatch/*.sbatch``, shipped as package data)."""
    name = "single_node.sbatch" if nodes == 1 else "multi_node.sbatch"
    return Path(str(resources.files("sslkit.distributed") / "sbatch" / name))


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
    parser.add_argument("--strategy", choices=sorted(STRATEGIES),
                        help="add recipes/_base/trainer/<strategy layer>.yaml (ddp, DeepSpeed ZeRO-1/2/3)")
    parser.add_argument("--compile", action="store_true", help="add recipes/_base/trainer/compile.yaml")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=1, help="0 runs on CPUs (--trainer.accelerator=cpu)")
    parser.add_argument("--gres", nargs="?", const="gpu", metavar="GPU[:TYPE]",
                        help="request GPUs as #SBATCH --gres=gpu[:TYPE]:<gpus-per-node> (sites without --gpus-per-node)")
    parser.add_argument("--ntasks-per-node", type=int, help="ranks per node (default: one per GPU, 1 without GPUs)")
    parser.add_argument("--cpus-per-task", type=int,
                        help="CPU cores per rank (default: the recipe's data.init_args.num_workers + 1)")
    parser.add_argument("--time", default="24:00:00", help="time limit of one run of the job (HH:MM:SS)")
    parser.add_argument("--signal-seconds", type=int, default=180,
                        help="USR1 this long before the time limit: time for one step and one checkpoint")
    parser.add_argument("--partition")
    parser.add_argument("--account")
    parser.add_argument("--qos")
    parser.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                        help="extra #SBATCH option, e.g. --sbatch=--constraint=a100 (repeatable)")
    parser.add_argument("--name", help="run folder under --runs and job name (default: <objective>/<recipe>)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="parent folder of run folders")
    parser.add_argument("--chdir", type=Path, default=Path.cwd(),
                        help="working folder of the job on every node (default: this folder)")
    parser.add_argument("--template", type=Path, help="sbatch template (default: the packaged single/multi-node one)")
    parser.add_argument("--python", default="python3", help="interpreter on the nodes (after --setup)")
    parser.add_argument("--setup", action="append", default=[], metavar="LINE",
                        help="shell line run before sslkit, e.g. --setup 'source ~/venvs/ssl/bin/activate' (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the script, write and submit nothing")
    return parser


def layer_paths(args: argparse.Namespace) -> list[str]:
    """``-c`` recipes plus the ``--strategy`` / ``--compile`` layers from the first recipe's ``_base/trainer``."""
    layers = [STRATEGIES[args.strategy]] if args.strategy else []
    layers += ["compile"] if args.compile else []
    if not layers:
        return list(args.config)
    first = Path(args.config[0]).resolve()
    folder = next((p / "_base" / "trainer" for p in first.parents if (p / "_base" / "trainer").is_dir()), None)
    if folder is None:
        raise UserError(f"--strategy/--compile: no _base/trainer/ folder above {first}; pass the layer with -c instead")
    return [*args.config, *(str(folder / f"{layer}.yaml") for layer in layers)]


def run_name(args: argparse.Namespace, recipe: dict[str, Any]) -> str:
    """``<objective>/<recipe>`` (``simclr/resnet50_imagenet1k``), or ``--name``."""
    if args.name:
        return args.name
    class_path = str((recipe.get("model") or {}).get("class_path", "run"))
    return f"{class_path.rsplit('.', 1)[-1].lower()}/{Path(args.config[0]).stem}"


def cpus_per_task(args: argparse.Namespace, recipe: dict[str, Any]) -> int:
    if args.cpus_per_task is not None:
        return args.cpus_per_task
    workers = ((recipe.get("data") or {}).get("init_args") or {}).get("num_workers", 7)
    return int(workers) + 1  # the rank's own process, plus its DataLoader workers


def gpu_lines(args: argparse.Namespace) -> list[str]:
    if not args.gpus_per_node:
        return []
    if args.gres:
        return [f"#SBATCH --gres={args.gres}:{args.gpus_per_node}"]
    return [f"#SBATCH --gpus-per-node={args.gpus_per_node}"]


def render_job(args: argparse.Namespace, overrides: list[str], recipe_path: Path, recipe: dict[str, Any]) -> str:
    """The sbatch script for parsed ``args``, the frozen ``recipe`` at ``recipe_path`` and ``overrides``."""
    tasks = args.ntasks_per_node or max(args.gpus_per_node, 1)
    if args.gpus_per_node and tasks != args.gpus_per_node:
        raise ValueError(f"--ntasks-per-node {tasks} != --gpus-per-node {args.gpus_per_node}: one rank per GPU")
    lines = gpu_lines(args)
    lines += [f"#SBATCH --{k}={v}" for k, v in (("partition", args.partition), ("account", args.account),
                                                 ("qos", args.qos)) if v]
    lines += [f"#SBATCH {opt}" for opt in args.sbatch]
    trainer_args = [] if args.gpus_per_node else ["--trainer.accelerator=cpu"]
    template = args.template or template_path(args.nodes)
    name = run_name(args, recipe)
    return render(Path(template).read_text(), {
        "job_name": name.replace("/", "-"), "nodes": args.nodes, "ntasks_per_node": tasks,
        "cpus_per_task": cpus_per_task(args, recipe), "time": args.time, "signal_seconds": args.signal_seconds,
        "sbatch_lines": "\n".join(lines), "runs_dir": (args.runs / name).resolve(),
        "chdir": args.chdir.resolve(), "setup": "\n".join(args.setup), "python": shlex.quote(args.python),
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
    merged = load_recipes(layer_paths(args))  # fail here, not in the queue, on a missing recipe or base
    runs_dir = (args.runs / run_name(args, merged)).resolve()
    recipe_path = runs_dir / f"recipe-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    script = render_job(args, overrides, recipe_path, merged)
    if args.dry_run:
        print(script)
        return 0
    return _write_and_submit(runs_dir, recipe_path, merged, script)


def _write_and_submit(runs_dir: Path, recipe_path: Path, recipe: dict[str, Any], script: str) -> int:
    """Write the frozen recipe and script, ``sbatch`` them; on failure remove what this call created."""
    missing = [p for p in (runs_dir, *runs_dir.parents) if not p.exists()]
    first_new = missing[-1] if missing else None  # the topmost folder this call creates
    runs_dir.mkdir(parents=True, exist_ok=True)
    script_path = recipe_path.with_suffix(".sbatch")
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    script_path.write_text(script)
    try:
        result = subprocess.run(["sbatch", "--parsable", str(script_path)], capture_output=True, text=True)
        error = result.stderr.strip() if result.returncode else ""
    except FileNotFoundError:
        result, error = None, "sbatch not found on PATH (run this on a SLURM login node)"
    if error:
        recipe_path.unlink(missing_ok=True)
        script_path.unlink(missing_ok=True)
        if first_new is not None:
            shutil.rmtree(first_new, ignore_errors=True)  # only folders this call made
        print(f"sslkit slurm submit: sbatch failed: {error}; nothing was left in {runs_dir}", file=sys.stderr)
        return result.returncode if result is not None else 2
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
