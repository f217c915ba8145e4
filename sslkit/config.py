"""Recipes: YAML files layered over shared defaults (``_base_``), merged before LightningCLI validates them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from sslkit.errors import RefusedInput, UserError

BASE_KEY = "_base_"
MAX_YAML_NODES = 100_000  # a recipe has a few hundred nodes once its aliases are expanded
# Model arguments that were renamed: a recipe still using the old name is refused, pointing at the new one.
RENAMED_MODEL_ARGS = {
    "momentum_start": "ema_momentum",  # the EMA teacher's schedule has one name everywhere (sslkit.teacher)
    "momentum_end": "ema_momentum_end",
}


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
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe must be a YAML mapping, got {type(data).__name__}")
    refuse_renamed_args(data, path)
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged: dict[str, Any] = {}
    for base in bases:
        merged = deep_merge(merged, load_recipe(path.parent / base, (*_seen, path)))
    return deep_merge(merged, data)


def refuse_renamed_args(recipe: dict[str, Any], path: Path) -> None:
    """Raise a one-line :class:`UserError` for a ``model.init_args`` key in :data:`RENAMED_MODEL_ARGS`."""
    model = recipe.get("model")
    init_args = model.get("init_args") if isinstance(model, dict) else None
    for old in init_args if isinstance(init_args, dict) else ():
        if old in RENAMED_MODEL_ARGS:
            raise UserError(f"{path}: model.init_args.{old} was renamed; write"
                            f" model.init_args.{RENAMED_MODEL_ARGS[old]} instead")


def load_yaml(path: Path, max_nodes: int = MAX_YAML_NODES) -> Any:
    """``yaml.safe_load`` of a file, refused when its aliases expand beyond ``max_nodes`` nodes.

    Nodes are counted on the composed graph, an alias counting its anchor's whole subtree, before any
    Python object is built: a 1.5 kB file of nested aliases (10^8 leaves once expanded, which
    jsonargparse would expand) fails at once, naming the file.
    """
    loader = yaml.SafeLoader(Path(path).read_text())
    try:
        try:
            node = loader.get_single_node()
            size = 0 if node is None else _expanded_size(node, {}, max_nodes)
        except RecursionError:
            raise RefusedInput(f"{path}: YAML nested too deeply to be a recipe") from None
        if node is None:
            return None
        if size > max_nodes:
            raise RefusedInput(f"{path}: YAML aliases expand to more than {max_nodes:,} nodes; write the values out")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, memo: dict[int, int | None], limit: int) -> int:
    """Nodes in ``node`` with every alias expanded (memoised per node; stops counting past ``limit``)."""
    key = id(node)
    if key in memo:
        known = memo[key]
        return limit + 1 if known is None else known  # None: an alias inside its own anchor, infinite
    memo[key] = None
    size = 1
    children = (c for pair in node.value for c in pair) if isinstance(node, yaml.MappingNode) else (
        node.value if isinstance(node, yaml.SequenceNode) else ())
    for child in children:
        size += _expanded_size(child, memo, limit)
        if size > limit:
            break
    memo[key] = size
    return size


def load_recipes(paths: list[str | Path]) -> dict[str, Any]:
    """Merge several recipes in order (``-c a.yaml -c b.yaml``): later files win."""
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, load_recipe(path))
    return merged
