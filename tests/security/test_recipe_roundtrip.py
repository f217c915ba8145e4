"""Every recipe's checkpoint loads back through ``load_objective`` (issue #11, acceptance 3).

The objective is built by LightningCLI from the recipe, so its ``hyper_parameters`` are exactly what
``save_hyperparameters`` stores (with LightningCLI's ``_class_path``/``_instantiator``); the checkpoint
is written as Lightning's ``dump_checkpoint`` does. A recipe naming a class the registry does not list
fails here. Models are built on the ``meta`` device (shapes, no memory) where the objective allows it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from sslkit.config import deep_merge, load_recipe
from sslkit.objectives import load_objective
from sslkit.training import build_cli
from tests.security.helpers import lightning_checkpoint

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
RECIPE_FILES = sorted(p for p in RECIPES.rglob("*.yaml") if "_base" not in p.parts)


def _objective(recipe: dict, tmp_path: Path) -> torch.nn.Module:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    args = ["--config", str(path), "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.logger=false"]
    return build_cli(args, tmp_path / "run").model


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_checkpoint_round_trips(path: Path, tmp_path: Path) -> None:
    recipe = load_recipe(path)
    try:
        with torch.device("meta"):
            model = _objective(recipe, tmp_path)
    except ValueError:  # sin-cos position tables are computed on the CPU: a 1-block build, for real
        recipe = deep_merge(recipe, {"model": {"init_args": {"backbone_kwargs": {"depth": 1}}}})
        model = _objective(recipe, tmp_path)
    device = next(model.parameters()).device
    assert "_class_path" in model.hparams  # built the way `sslkit pretrain` builds it
    torch.save(lightning_checkpoint(model), tmp_path / "last.ckpt")

    with torch.device(device):
        loaded = load_objective(tmp_path / "last.ckpt")

    assert type(loaded) is type(model)
    ours, theirs = loaded.state_dict(), model.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert (ours[key].shape, ours[key].dtype) == (value.shape, value.dtype), key
        assert device.type == "meta" or torch.equal(ours[key], value), key
