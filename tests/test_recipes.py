"""Every recipe instantiates (model, data, trainer) so recipes cannot rot; typos name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from sslkit.config import deep_merge, load_recipe
from sslkit.errors import UserError
from sslkit.masking.grid import check_mask_grid
from sslkit.objectives.base import SSLObjective
from sslkit.training import SSLCLI, build_cli

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
RECIPE_FILES = sorted(p for p in RECIPES.rglob("*.yaml") if "_base" not in p.parts)


def _instantiate(recipe: dict, tmp_path: Path, *extra: str) -> SSLCLI:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return build_cli(["--config", str(path), "--trainer.accelerator=cpu", "--trainer.devices=1", *extra], tmp_path / "run")


def test_recipes_exist() -> None:
    assert len(RECIPE_FILES) >= 2


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_instantiates(path: Path, tmp_path: Path) -> None:
    recipe = load_recipe(path)
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("#"), "a recipe starts with a comment naming its paper"
    if "imagenet" in path.stem:  # paper-size networks (ViT-H: 632M parameters): shapes only, no memory
        try:
            with torch.device("meta"):
                cli = _instantiate(recipe, tmp_path)
        except ValueError:  # sin-cos position tables are computed on the CPU: a 1-block build, for real
            cli = _instantiate(deep_merge(recipe, {"model": {"init_args": {"backbone_kwargs": {"depth": 1}}}}), tmp_path)
    else:
        cli = _instantiate(recipe, tmp_path)
    assert isinstance(cli.model, SSLObjective)
    assert cli.datamodule is not None
    assert cli.trainer.max_epochs == recipe["trainer"]["max_epochs"]
    check_mask_grid(getattr(cli.datamodule, "collate_fn", None), cli.model.backbone, str(path))  # what setup checks


def test_misspelled_key_names_it_the_file_and_the_fix(tmp_path: Path) -> None:
    recipe_file = tmp_path / "typo.yaml"
    recipe_file.write_text(f"_base_: {RECIPES / 'simclr' / 'vit_tiny_cifar10.yaml'}\nmodel:\n  init_args:\n"
                           "    temprature: 0.1\n")
    with pytest.raises(UserError) as exc:
        build_cli(["--trainer.accelerator=cpu"], tmp_path / "run", recipe=load_recipe(recipe_file),
                  recipe_files=[recipe_file])
    message = str(exc.value)
    assert "\n" not in message
    assert str(recipe_file) in message and "model.init_args.temprature" in message
    assert "did you mean temperature?" in message


def test_misspelled_trainer_key_names_it(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPES / "simclr" / "vit_tiny_cifar10.yaml")
    recipe["trainer"]["max_epohs"] = 3
    with pytest.raises(UserError, match=r"trainer\.max_epohs is not a trainer argument \(did you mean max_epochs\?\)"):
        build_cli([], tmp_path / "run", recipe=recipe)
    with pytest.raises(UserError, match=r"^command line: trainer\.max_epohs .*did you mean max_epochs"):
        build_cli(["--trainer.max_epohs=3"], tmp_path / "run", recipe=load_recipe(RECIPES / "simclr" / "vit_tiny_cifar10.yaml"))
