"""Recipes: YAML files layered over shared defaults (``_base_``), merged before LightningCLI validates them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

BASE_KEY = "_base_"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``; lists and scalars are replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_recipe(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load a recipe and the ``_base_`` files it names (paths relative to the recipe), bases first.

    Raises:
        FileNotFoundError: naming the missing recipe or base.
        ValueError: on a cycle of bases or a recipe that is not a mapping.
    """
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"recipe bases form a cycle: {' -> '.join(str(p) for p in (*_seen, path))}")
    if not path.is_file():
        raise FileNotFoundError(f"recipe not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe must be a YAML mapping, got {type(data).__name__}")
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged: dict[str, Any] = {}
    for base in bases:
        merged = deep_merge(merged, load_recipe(path.parent / base, (*_seen, path)))
    return deep_merge(merged, data)


def load_recipes(paths: list[str | Path]) -> dict[str, Any]:
    """Merge several recipes in order (``-c a.yaml -c b.yaml``): later files win."""
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, load_recipe(path))
    return merged
