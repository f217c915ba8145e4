"""The ``sslkit`` command as a new user meets it: one-line errors (exit 2), help, recipes, run folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sslkit.cli import main
from sslkit.data import open_source, write_shards

REPO = Path(__file__).resolve().parents[1]
SIMCLR = REPO / "recipes" / "simclr" / "vit_tiny_cifar10.yaml"


@pytest.fixture(scope="module")
def digit_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """360 real 32-px digits in one shard folder with its manifest."""
    out = tmp_path_factory.mktemp("cli_digits")
    write_shards(open_source("digits", split="test", size=32), out, prefix="digits", progress=False)
    return out


def tiny_recipe(tmp_path: Path, shards: Path, **data: object) -> Path:
    """A 2-step SimCLR recipe over ``shards`` layered on the real CIFAR-10 recipe."""
    recipe = {
        "_base_": str(SIMCLR),
        "trainer": {"max_steps": 2, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
        "model": {"init_args": {"backbone_kwargs": {"img_size": 32, "patch_size": 8, "depth": 1}}},
        "data": {"init_args": {"train_shards": str(shards), "val_shards": None, "batch_size_per_device": 16,
                               "num_workers": 0, "persistent_workers": False, **data}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text("# tiny SimCLR for CLI tests\n" + yaml.safe_dump(recipe))
    return path


def user_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``sslkit argv``; assert exit 2 and no traceback; return the one error line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"sslkit {argv[0]}: ")
    return line


def test_missing_shard_folder(tmp_path: Path, digit_shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "shards" / "nope"
    line = user_error(capsys, ["pretrain", "-c", str(tiny_recipe(tmp_path, missing)), "--run-dir", str(tmp_path / "r")])
    assert "data.init_args.train_shards" in line and str(missing) in line and "does not exist" in line


def test_folder_without_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "images").mkdir()
    recipe = tiny_recipe(tmp_path, tmp_path / "images")
    line = user_error(capsys, ["pretrain", "-c", str(recipe), "--run-dir", str(tmp_path / "r")])
    assert "has no manifest.json" in line and "sslkit data shard" in line


def test_batch_larger_than_dataset_names_the_key(
    tmp_path: Path, digit_shards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tiny_recipe(tmp_path, digit_shards, batch_size_per_device=1000)
    line = user_error(capsys, ["pretrain", "-c", str(recipe), "--run-dir", str(tmp_path / "r")])
    assert "data.init_args.batch_size_per_device=1000" in line and "360" in line and "=360 or less" in line


def test_misspelled_recipe_key(tmp_path: Path, digit_shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tiny_recipe(tmp_path, digit_shards)
    text = recipe.read_text().replace("batch_size_per_device:", "batch_size_per_devise:")
    recipe.write_text(text)
    line = user_error(capsys, ["pretrain", "-c", str(recipe), "--run-dir", str(tmp_path / "r")])
    assert line == (f"sslkit pretrain: {recipe}: data.init_args.batch_size_per_devise is not a ShardDataModule "
                    "argument (did you mean batch_size_per_device?)")
    line = user_error(capsys, ["pretrain", "-c", str(SIMCLR), "--model.init_args.temprature=0.1",
                               "--run-dir", str(tmp_path / "r")])
    assert line.endswith("command line: model.init_args.temprature is not a SimCLR argument (did you mean temperature?)")


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "pretrain", "-c", "simclr/no_such_recipe"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "UserError" in err and "recipe 'simclr/no_such_recipe' not found" in err


def test_recipe_by_name_and_listing(capsys: pytest.CaptureFixture[str]) -> None:
    from sslkit.recipes import resolve_recipe

    assert resolve_recipe("simclr/vit_tiny_cifar10") == SIMCLR
    assert resolve_recipe("simclr/vit_tiny_cifar10.yaml") == SIMCLR
    line = user_error(capsys, ["pretrain", "-c", "simclr/vit_tiny_cifar1"])
    assert "did you mean simclr/vit_tiny_cifar10" in line
    assert main(["recipes"]) == 0
    listing = capsys.readouterr().out
    assert "simclr/vit_tiny_cifar10" in listing and "SimCLR" in listing and "objectives:" in listing
    assert "_base/" not in listing and " ? " not in listing


def test_help_and_version_import_no_torch() -> None:
    code = ("import sys; from sslkit.cli import main; main(['pretrain', '--help']); main(['--version']); "
            "print('HEAVY', sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "--resume" in out and "--run-dir" in out and "--help-lightning" in out and "(default: auto)" in out
    assert "sslkit " in out and "HEAVY []" in out


def test_run_folder_record_and_last_step_logged(
    tmp_path: Path, digit_shards: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two steps with log_every_n_steps=10: the run folder is printed, runs/<objective>/<recipe>/..., the
    loss of the last step is in metrics.csv, run.json records dataset and budget, no temp recipe is left."""
    import tempfile

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSLKIT_RUN_DIR", raising=False)
    before = set(Path(tempfile.gettempdir()).glob("sslkit-recipe-*"))
    assert main(["pretrain", "-c", str(tiny_recipe(tmp_path, digit_shards))]) == 0
    err = capsys.readouterr().err
    (run_dir,) = (tmp_path / "runs" / "simclr" / "tiny").iterdir()
    assert f"run folder {run_dir.relative_to(tmp_path)}" in err
    for noise in ("litlogger", "LightningCLI's args", "validation_step", "_pytree", "weights_only"):
        assert noise not in err
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert any(row.split(",")[header.index("train/loss")] for row in rows[1:])
    record = json.loads((run_dir / "run.json").read_text())
    assert record["train"]["source"] == "digits:test" and record["train"]["num_samples"] == 360
    assert record["budget"]["batch_size_per_device"] == 16 and record["budget"]["world_size"] == 1
    assert record["preprocessing"]["input_size"] == 32 and record["preprocessing"]["mean"][0] == pytest.approx(0.4914)
    assert set(Path(tempfile.gettempdir()).glob("sslkit-recipe-*")) == before


def test_the_same_command_resumes_an_unfinished_run(
    tmp_path: Path, digit_shards: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that did not finish (killed: no `.finished`) is found again by the plain same command and resumed;
    a changed override, or a finished run, gets a folder of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSLKIT_RUN_DIR", raising=False)
    recipe = str(tiny_recipe(tmp_path, digit_shards))
    assert main(["pretrain", "-c", recipe]) == 0
    (first,) = (tmp_path / "runs" / "simclr" / "tiny").iterdir()
    (first / ".finished").unlink()  # as if killed after its last checkpoint
    capsys.readouterr()
    assert main(["pretrain", "-c", recipe, "--trainer.max_steps=3"]) == 0  # another config: a new run
    assert len(list((tmp_path / "runs" / "simclr" / "tiny").iterdir())) == 2
    capsys.readouterr()
    assert main(["pretrain", "-c", recipe]) == 0  # the same command as the first run
    assert f"run folder {first.relative_to(tmp_path)}" in capsys.readouterr().err
    assert len(list((tmp_path / "runs" / "simclr" / "tiny").iterdir())) == 2
    assert (first / ".finished").exists()
