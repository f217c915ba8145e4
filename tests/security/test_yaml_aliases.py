"""A 1.5 kB recipe of nested YAML aliases (10^8 leaves, issue #11 finding 5) fails at once, naming the file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sslkit.config import load_recipe, load_yaml
from sslkit.errors import UserError


def _bomb(levels: int = 8, width: int = 10) -> str:
    lines = ["seed_everything: 0", "model:", "  init_args:", "    l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_at_once(tmp_path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    assert path.stat().st_size < 1600
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"bomb.yaml: YAML aliases expand to more than 100,000 nodes"):
        load_recipe(path)
    assert time.perf_counter() - start < 2.0


def test_alias_bomb_through_sslkit_pretrain(tmp_path, capsys) -> None:
    from sslkit.cli import main

    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    assert main(["pretrain", "-c", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bomb.yaml: YAML aliases expand" in err[0]


@pytest.mark.timeout(120)  # without the check it runs for many minutes
def test_alias_bomb_as_a_command_line_value(tmp_path, capsys) -> None:
    """jsonargparse reads a file given as a value (``--model=x.yaml``) and expands its aliases itself: the
    same check runs on it first (without it, this command ran for minutes, 10^8 nodes)."""
    from sslkit.cli import main

    model = tmp_path / "bomb_model.yaml"
    model.write_text("class_path: sslkit.objectives.SimCLR\n" + _bomb().split("model:\n", 1)[1].replace("\n    ", "\n  ")
                     .replace("  init_args:", "init_args:", 1))
    start = time.perf_counter()
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "simclr" / "vit_tiny_digits.yaml"
    code = main(["pretrain", "-c", str(recipe), f"--model={model}",
                 "--run-dir", str(tmp_path / "run")])
    assert code == 2 and time.perf_counter() - start < 30
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "run folder" not in line]
    assert len(err) == 1 and "bomb_model.yaml: YAML aliases expand" in err[0]


def test_a_recursive_alias_is_refused(tmp_path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(UserError, match="loop.yaml: YAML aliases expand"):
        load_yaml(path)


def test_ordinary_aliases_still_load(tmp_path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("mean: &m [0.5, 0.5, 0.5]\nmodel: {init_args: {mean: *m}}\n")
    assert load_recipe(path) == {"mean": [0.5] * 3, "model": {"init_args": {"mean": [0.5] * 3}}}
