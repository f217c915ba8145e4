"""Recipe loading: a renamed model argument is refused in one line that names the file and the new name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslkit.config import RENAMED_MODEL_ARGS, load_recipe
from sslkit.errors import UserError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.parametrize("old", sorted(RENAMED_MODEL_ARGS))
def test_renamed_teacher_momentum_key_points_at_the_new_name(old: str, tmp_path: Path) -> None:
    recipe = tmp_path / "old_ijepa.yaml"
    recipe.write_text(f"_base_: [{RECIPES / 'ijepa' / 'vit_tiny_cifar10.yaml'}]\nmodel:\n  init_args:\n"
                      f"    {old}: 0.99\n")
    with pytest.raises(UserError) as exc:
        load_recipe(recipe)
    message = str(exc.value)
    assert "\n" not in message and str(recipe) in message
    assert f"model.init_args.{old} was renamed" in message
    assert f"model.init_args.{RENAMED_MODEL_ARGS[old]} instead" in message


def test_recipes_use_the_new_names() -> None:
    for path in RECIPES.rglob("*.yaml"):
        load_recipe(path)  # would raise on an old name in the file or any of its bases
