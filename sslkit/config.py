"""Recipes: YAML files layered over shared defaults (``_base_``), merged before LightningCLI validates them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from sslkit.errors import RefusedInput, UserError
from sslkit.presets import MASK_COLLATORS, NORMALISING_TRANSFORMS, STATS

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


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Load a recipe and the ``_base_`` files it names (paths relative to the recipe), bases first, with
    its ``stats:`` and ``image:`` sections expanded (:func:`expand_sections`).

    Raises:
        FileNotFoundError: naming the missing recipe or base.
        ValueError: on a cycle of bases or a recipe that is not a mapping.
        UserError: on a bad ``stats:``/``image:`` section or a value disagreeing with it.
    """
    return expand_sections(_load_layers(Path(path)))


def _load_layers(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe merged over its ``_base_`` files, sections not yet expanded (a later layer may set them)."""
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
        merged = deep_merge(merged, _load_layers(path.parent / base, (*_seen, path)))
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


def refuse_yaml_bombs(args: list[str], max_bytes: int = 1 << 20) -> None:
    """:func:`load_yaml`'s alias check on every command-line value that names a small file.

    jsonargparse reads a file given as a value (``--model=model.yaml``, ``--data=data.yaml``) with its own
    YAML loader and expands every alias: a 1.5 kB file of nested aliases would hang the parser. A value
    that is not YAML (a checkpoint, an image folder's file) is left to the parser.
    """
    for arg in args:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        try:
            path = Path(value)
            if not path.is_file() or path.stat().st_size > max_bytes:
                continue
        except (OSError, ValueError):  # an inline YAML value too long or odd to be a path
            continue
        try:
            load_yaml(path)
        except (yaml.YAMLError, UnicodeDecodeError):
            continue


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
        merged = deep_merge(merged, _load_layers(Path(path)))
    return expand_sections(merged)


def expand_sections(recipe: dict[str, Any]) -> dict[str, Any]:
    """Pop the recipe-level sections and write their values where LightningCLI validates them.

    ``stats: <preset>`` (:data:`sslkit.presets.STATS`) gives ``mean``/``std`` to every normalising
    transform (under ``data``, or a device-augmentation callback's views); ``image: {size, patch_size}``
    gives ``img_size``/``patch_size`` to ``model.init_args.backbone_kwargs`` and ``input_size``/``patch_size``
    to every mask collator. A key the recipe states itself must agree: one source of truth, not two.

    Raises:
        UserError: unknown preset, malformed section, or a stated value that disagrees.
    """
    out = copy.deepcopy(recipe)
    stats, image = out.pop("stats", None), out.pop("image", None)
    if stats is not None:
        if not isinstance(stats, str) or stats not in STATS:
            raise UserError(f"recipe stats: {stats!r} is not a preset; write one of {', '.join(sorted(STATS))}"
                            " (or drop stats: and give each transform mean/std lists)")
        mean, std = (list(values) for values in STATS[stats])
        for where, args in _components(out, "sslkit.transforms.", NORMALISING_TRANSFORMS, ""):
            _fill(args, {"mean": mean, "std": std}, where, f"stats: {stats}")
    if image is not None:
        size, patch = _image_section(image)
        model = out.setdefault("model", {})
        kwargs = model.setdefault("init_args", {}).setdefault("backbone_kwargs", {})
        _fill(kwargs, {"img_size": size, **({"patch_size": patch} if patch else {})},
              "model.init_args.backbone_kwargs", "image")
        for where, args in _components(out, "sslkit.masking.", MASK_COLLATORS, ""):
            if patch is None:
                raise UserError(f"recipe image: has no patch_size, which {where} needs; add image.patch_size")
            _fill(args, {"input_size": size, "patch_size": patch}, where, "image")
    return out


def _image_section(image: Any) -> tuple[int, int | None]:
    """``(size, patch_size or None)`` of an ``image:`` section, or a one-line :class:`UserError`."""
    if not isinstance(image, dict) or set(image) - {"size", "patch_size"} or "size" not in image:
        raise UserError(f"recipe image: {image!r} must be a mapping {{size: <px>, patch_size: <px>}}"
                        " (patch_size for ViTs only)")
    values = [image["size"], image.get("patch_size")]
    if any(v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0) for v in values):
        raise UserError(f"recipe image: {image!r}: size and patch_size must be positive integers (pixels)")
    return values[0], values[1]


def _components(node: Any, prefix: str, names: frozenset[str], where: str) -> list[tuple[str, dict[str, Any]]]:
    """``(dotted path, init_args)`` of every ``{class_path: <prefix>[module.]<name>}`` mapping under ``node``."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        class_path = node.get("class_path")
        if isinstance(class_path, str) and class_path.startswith(prefix) and class_path.rsplit(".", 1)[-1] in names:
            if not isinstance(node.get("init_args"), dict):
                node["init_args"] = {}
            found.append((f"{where}.init_args", node["init_args"]))
        for key, child in node.items():
            found += _components(child, prefix, names, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += _components(child, prefix, names, f"{where}[{i}]")
    return found


def _fill(args: dict[str, Any], values: dict[str, Any], where: str, section: str) -> None:
    """Set ``values`` in ``args``; a key already there must equal its value (else a :class:`UserError`)."""
    for key, value in values.items():
        stated = args.get(key)
        if stated is not None and _normalised(stated) != _normalised(value):
            raise UserError(f"recipe {where}.{key} is {stated} but {section} gives {value}; drop {key} there"
                            " (the section is the one source) or change the section")
        args[key] = value


def _normalised(value: Any) -> Any:
    """Lists/tuples of numbers as a tuple of floats, so ``[0.5, 0.5, 0.5]`` equals ``(0.5, 0.5, 0.5)``."""
    if isinstance(value, (list, tuple)):
        return tuple(float(v) if isinstance(v, (int, float)) else v for v in value)
    return value
