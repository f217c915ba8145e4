"""``sslkit slurm submit``: templates render with the job keyed run dir, signal, requeue and ranks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslkit.cli import main
from sslkit.distributed.slurm import render

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
                 f'export SSLKIT_RUN_DIR="{tmp_path}/vit_tiny_cifar10/job${{SLURM_JOB_ID}}"',
                 "--trainer.num_nodes=4 --trainer.devices=8 --trainer.max_epochs=100"):
        assert line in script, line
    assert "srun --kill-on-bad-exit=1" in script and "-m sslkit.cli pretrain -c" in script
    assert "{{" not in script and not list(tmp_path.iterdir())  # dry run writes nothing


def test_single_node_cpu_script(capsys: pytest.CaptureFixture[str]) -> None:
    script = _dry_run(capsys, "--gpus-per-node", "0", "--ntasks-per-node", "2", "--cpus-per-task", "1")
    assert "#SBATCH --nodes=1" in script and "--gpus-per-node" not in script.split("set -euo")[0]
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
    from sslkit.cli import _run_dir_default

    for name in ("SSLKIT_RUN_DIR", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # A requeued job / restarted worker gets the same folder, so --resume auto finds its last.ckpt.
    assert _run_dir_default(["recipes/byol/vit_tiny_cifar10.yaml"]) == Path("runs/vit_tiny_cifar10") / key
