"""``sslkit slurm submit``: templates render with the job keyed run dir, signal, requeue and ranks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

import sslkit.distributed
from sslkit.cli import main
from sslkit.distributed.slurm import render, template_path

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
RECIPE = str(RECIPES / "simclr" / "vit_tiny_cifar10.yaml")
DDP = str(RECIPES / "_base" / "trainer" / "ddp.yaml")


def _dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["slurm", "submit", "-c", RECIPE, "-c", DDP, "--dry-run", *args]) == 0
    return capsys.readouterr().out


def test_multi_node_script(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    script = _dry_run(capsys, "--nodes", "4", "--gpus-per-node", "8", "--partition", "gpu", "--time", "12:00:00",
                      "--runs", str(tmp_path), "--sbatch=--constraint=h100", "--trainer.max_epochs=100")
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --signal=USR1@180", "#SBATCH --requeue", "#SBATCH --partition=gpu",
                 "#SBATCH --time=12:00:00", "#SBATCH --constraint=h100",
                 "#SBATCH --job-name=simclr-vit_tiny_cifar10", f"#SBATCH --chdir={Path.cwd()}",
                 f'export SSLKIT_RUN_DIR="{tmp_path}/simclr/vit_tiny_cifar10/job${{SLURM_JOB_ID}}"',
                 "--trainer.num_nodes=4 --trainer.devices=8 --trainer.max_epochs=100"):
        assert line in script, line
    assert "srun --kill-on-bad-exit=1" in script and "-m sslkit.cli pretrain -c" in script
    assert "{{" not in script and not list(tmp_path.iterdir())  # dry run writes nothing


def test_single_node_cpu_script(capsys: pytest.CaptureFixture[str]) -> None:
    script = _dry_run(capsys, "--gpus-per-node", "0", "--ntasks-per-node", "2", "--cpus-per-task", "1")
    assert "#SBATCH --nodes=1" in script and "--gpus-per-node" not in script.split("set -eo")[0]
    assert "--trainer.num_nodes=1 --trainer.devices=2 --trainer.accelerator=cpu" in script


def test_bad_requests_fail_before_the_queue(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="one rank per GPU"):
        _dry_run(capsys, "--gpus-per-node", "4", "--ntasks-per-node", "2")
    assert main(["slurm", "submit", "-c", RECIPE, "--dry-run", "stray"]) == 2
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        main(["slurm", "submit", "-c", "nope.yaml", "--dry-run"])
    with pytest.raises(KeyError, match="missing"):
        render("{{missing}}", {})


@pytest.mark.parametrize(("env", "key"), [
    ({"SLURM_JOB_ID": "42"}, "job42"),
    ({"SLURM_JOB_ID": "43", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "3"}, "job40_3"),
    ({"TORCHELASTIC_RUN_ID": "abc"}, "torchrun-abc"),
])
def test_run_dir_keyed_by_job(env: dict[str, str], key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sslkit.run_dir import resolve_run_dir

    for name in ("SSLKIT_RUN_DIR", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # A requeued job / restarted worker gets the same folder, so --resume auto finds its last.ckpt.
    assert resolve_run_dir(["recipes/byol/vit_tiny_cifar10.yaml"], "byol", None, "auto", "f00d") == (
        Path("runs/byol/vit_tiny_cifar10") / key)


def test_portable_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """No path of the submitting machine: the interpreter, set-up, folder, cores and GPU request are settings."""
    default = _dry_run(capsys, "--gpus-per-node", "8")
    assert sys.executable not in default and " python3 -m sslkit.cli pretrain" in default
    assert "#SBATCH --cpus-per-task=5" in default  # the CIFAR-10 layer's 4 workers + the rank itself
    script = _dry_run(capsys, "--nodes", "2", "--gpus-per-node", "4", "--gres", "gpu:a100", "--cpus-per-task", "12",
                      "--python", "/opt/env/bin/python", "--setup", "module load cuda/12.4",
                      "--setup", "source /opt/env/bin/activate", "--chdir", str(tmp_path))
    header, body = script.split("set -eo pipefail")
    assert "#SBATCH --gres=gpu:a100:4" in header and "--gpus-per-node" not in header
    assert "#SBATCH --cpus-per-task=12" in header and f"#SBATCH --chdir={tmp_path}" in header
    assert (body.index("module load cuda/12.4") < body.index("source /opt/env/bin/activate") < body.index("\nset -u\n")
            < body.index("srun"))  # set-up runs before `set -u`: activation scripts read unset variables
    assert "srun --kill-on-bad-exit=1 /opt/env/bin/python -m sslkit.cli" in body
    assert 'SRUN_CPUS_PER_TASK="${SLURM_CPUS_PER_TASK}"' in body  # srun >= 22.05 would give 1 core per rank
    assert template_path(1).is_file() and template_path(2).is_file()
    assert template_path(1).parent == Path(sslkit.distributed.__file__).parent / "sbatch"  # package data


def _fake_sbatch(bin_dir: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f"#!/bin/sh\n{body}\n")
    sbatch.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_strategy_layer_is_frozen_with_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _fake_sbatch(tmp_path / "bin", monkeypatch, 'echo "4242;cluster"')
    recipe = str(RECIPES / "simclr" / "resnet50_imagenet1k.yaml")
    assert main(["slurm", "submit", "-c", recipe, "--strategy", "zero2", "--compile", "--nodes", "4",
                 "--gpus-per-node", "8", "--runs", str(tmp_path / "runs")]) == 0
    assert "submitted job 4242" in capsys.readouterr().out
    run = tmp_path / "runs" / "simclr" / "resnet50_imagenet1k"
    (frozen,) = run.glob("recipe-*.yaml")
    merged = yaml.safe_load(frozen.read_text())
    assert merged["trainer"]["strategy"]["init_args"]["stage"] == 2
    assert merged["model"]["init_args"]["backbone_kwargs"] == {"channels_last": True, "compile": True}
    assert "#SBATCH --job-name=simclr-resnet50_imagenet1k" in frozen.with_suffix(".sbatch").read_text()


def test_failed_sbatch_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _fake_sbatch(tmp_path / "bin", monkeypatch, 'echo "sbatch: error: invalid partition" >&2; exit 1')
    runs = tmp_path / "runs"
    assert main(["slurm", "submit", "-c", RECIPE, "--runs", str(runs), "--partition", "nope"]) == 1
    assert "invalid partition" in capsys.readouterr().err
    assert not runs.exists()  # the folders this call made are gone too
    runs.mkdir()
    (runs / "keep.txt").write_text("x")
    assert main(["slurm", "submit", "-c", RECIPE, "--runs", str(runs)]) == 1
    assert [p.name for p in runs.iterdir()] == ["keep.txt"]  # what was there before stays
