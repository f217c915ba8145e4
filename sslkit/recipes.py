"""Finding recipes by name (``-c simclr/vit_tiny_cifar10``), listing them, and explaining a bad recipe key.

Nothing here imports torch or Lightning: ``sslkit recipes`` and ``sslkit pretrain --help`` stay fast.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from sslkit.config import BASE_KEY, load_yaml
from sslkit.errors import UserError

BASE_DIR = "_base"


def recipes_root() -> Path:
    """The recipes folder: ``$SSLKIT_RECIPES``, else ``recipes/`` next to the ``sslkit`` package (a clone or
    an editable install), else ``./recipes``."""
    if os.environ.get("SSLKIT_RECIPES"):
        return Path(os.environ["SSLKIT_RECIPES"])
    beside = Path(__file__).resolve().parents[1] / "recipes"
    return beside if beside.is_dir() else Path("recipes")


def resolve_recipe(name: str) -> Path:
    """A recipe path, or a name under :func:`recipes_root` (``simclr/vit_tiny_cifar10``, ``.yaml`` optional).

    Raises:
        UserError: naming the closest known recipes.
    """
    path = Path(name)
    if path.is_file():
        return path
    root = recipes_root()
    for candidate in (root / name, root / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    names = [n for n, _ in iter_recipes(root)]
    close = difflib.get_close_matches(name.removesuffix(".yaml"), names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "`sslkit recipes` lists them"
    raise UserError(f"recipe {name!r} not found (no such file, nor a recipe name under {root}); {hint}")


def iter_recipes(root: Path | None = None) -> Iterator[tuple[str, Path]]:
    """``(name, path)`` of every recipe under ``root`` (bases excluded), sorted."""
    root = root or recipes_root()
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root)
        if BASE_DIR not in rel.parts:
            yield rel.with_suffix("").as_posix(), path


def describe(path: Path) -> tuple[str, str]:
    """``(objective class name, the recipe's first comment line)``; the objective may come from a base."""
    from sslkit.config import load_recipe

    text = path.read_text()
    first = text.splitlines()[0].lstrip("# ").strip() if text.startswith("#") else ""
    try:
        class_path = str((load_recipe(path).get("model") or {}).get("class_path") or "?")
    except (OSError, ValueError, yaml.YAMLError):  # a broken recipe still gets listed
        class_path = "?"
    return class_path.rpartition(".")[2], first


def list_recipes() -> str:
    """The text ``sslkit recipes`` prints: one line per recipe, then the objectives they use."""
    rows = [(name, *describe(path)) for name, path in iter_recipes()]
    width = max((len(name) for name, _, _ in rows), default=10)
    lines = [f"recipes under {recipes_root()} (use as: sslkit pretrain -c NAME)", ""]
    lines += [f"  {name:<{width}}  {objective:<12} {about[:90]}" for name, objective, about in rows]
    objectives = sorted({objective for _, objective, _ in rows} - {"?"})
    lines += ["", f"objectives: {', '.join(objectives)}"]
    return "\n".join(lines)


def objective_name(recipe: dict[str, Any]) -> str:
    """The objective's module name (``simclr``) of a merged recipe: the run folder's first level."""
    class_path = str((recipe.get("model") or {}).get("class_path") or "run")
    return class_path.rpartition(".")[2].lower()


# ---------------------------------------------------------------------------------------------- bad keys
_UNKNOWN_OPTION = re.compile(r"Problem with given class_path '([\w.]+)':\s+Option '(\w+)' is not accepted")
_UNKNOWN_GROUP_KEY = re.compile(r"Group '([\w.]+)' does not accept option '(\w+)'")
_UNRECOGNISED = re.compile(r"unrecognized arguments: (\S+)", re.IGNORECASE)


def explain_parse_error(message: str, recipe: dict[str, Any], files: list[Path], overrides: list[str]) -> str | None:
    """One line for a jsonargparse error about an unknown key, or ``None`` if it is about something else.

    ``recipe/x.yaml: model.init_args.temperatur is not a SimCLR argument (did you mean temperature?)``
    """
    found = _UNKNOWN_OPTION.search(message)
    if found:
        class_path, key = found.groups()
        owner, accepted = class_path.rpartition(".")[2], _accepted(class_path)
        dotted = _find_key(recipe, key, class_path) or key
    else:
        found = _UNKNOWN_GROUP_KEY.search(message) or _UNRECOGNISED.search(message)
        if not found:
            return None
        group, key = found.groups() if len(found.groups()) == 2 else ("", found.group(1))
        key = key.lstrip("-").split("=")[0]
        if not group and "." in key:  # --trainer.max_epohs=3 on the command line
            group, _, key = key.rpartition(".")
        owner = group or "sslkit pretrain"
        accepted = _accepted("lightning.pytorch.Trainer") if group == "trainer" else []
        dotted = f"{group}.{key}" if group else key
    close = difflib.get_close_matches(key.rpartition(".")[2], accepted, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    where = _where(key, files, overrides)
    spelled = [o.lstrip("-").split("=")[0] for o in overrides if re.search(rf"\.{re.escape(key)}(=|$)", o)]
    dotted = spelled[0] if where == "command line" and spelled else dotted
    return f"{where}: {dotted} is not a {owner} argument{hint}"


def _accepted(class_path: str) -> list[str]:
    """Constructor parameter names of ``class_path`` (its bases' too where it forwards ``**kwargs``)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return []
    names: list[str] = []
    for klass in inspect.getmro(cls):
        params = inspect.signature(klass.__init__).parameters if "__init__" in vars(klass) else {}
        names += [p for p, v in params.items() if p != "self" and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)]
        if not any(v.kind == v.VAR_KEYWORD for v in params.values()) and params:
            break
    return names


def _find_key(node: Any, key: str, class_path: str, prefix: str = "") -> str | None:
    """The dotted path of ``key`` inside the ``init_args`` of the mapping whose ``class_path`` is given."""
    if not isinstance(node, dict):
        return None
    if node.get("class_path") == class_path and key in (node.get("init_args") or {}):
        return f"{prefix}init_args.{key}"
    for name, value in node.items():
        hit = _find_key(value, key, class_path, f"{prefix}{name}.")
        if hit:
            return hit
    return None


def _where(key: str, files: list[Path], overrides: list[str]) -> str:
    """The last recipe file (bases included) that spells ``key``, or "command line"."""
    if any(re.search(rf"[.\-]{re.escape(key)}(=|$)", o) for o in overrides):
        return "command line"
    for path in reversed(_with_bases(files)):
        if re.search(rf"(^|[\s{{,]){re.escape(key)}\s*:", path.read_text(), re.MULTILINE):
            return _display(path)
    return _display(files[-1]) if files else "recipe"


def _with_bases(files: list[Path], _seen: frozenset[Path] = frozenset()) -> list[Path]:
    """Each recipe preceded by the ``_base_`` files it layers over, in merge order (a cycle is cut)."""
    out: list[Path] = []
    for path in files:
        if path.resolve() in _seen:
            continue
        data = load_yaml(path) or {}
        bases = data.get(BASE_KEY, []) if isinstance(data, dict) else []
        for base in [bases] if isinstance(bases, str) else bases:
            out += _with_bases([path.parent / base], _seen | {path.resolve()})
        out.append(path)
    return out


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
