"""What a checkpoint may instantiate: one explicit, small list per slot, checked before anything is built.

A checkpoint's ``hyper_parameters`` are plain data (they pass ``torch.load(weights_only=True)``), but
a nested ``{"class_path": ..., "init_args": ...}`` in them names code. Only the classes listed here
are ever imported or built from a checkpoint, and only in their own slot:

- ``OBJECTIVES``: the methods (``sslkit_objective`` of a checkpoint, the class ``load_objective`` builds);
- ``SLOTS[slot]``: the classes designed for one nested slot (``aux_loss``, ``transform``, ``collator``);
  ``SLOT_OF_KEY`` says which hyper-parameter names hold which slot.

Every ``class_path`` anywhere in ``hyper_parameters`` is looked up here, and every ``init_args`` key
checked against the constructor signature, before any class is built; anything else is refused
with one line naming the key and the value (:class:`RefusedInput`).

How to add a class (one line):

- a new objective: append ``"sslkit.objectives.<module>.<Class>"`` to :data:`OBJECTIVES`
  (``tests/security/test_registry.py`` fails for an ``SSLObjective`` subclass in
  ``sslkit/objectives/`` that is not listed, and the recipe round-trip test for its recipe);
- a class an objective takes as a nested spec: append its ``module.Class`` path to that slot in
  :data:`SLOTS`; a new kind of slot: a new ``SLOTS`` entry plus the hyper-parameter names that hold
  it in :data:`SLOT_OF_KEY`.

List only classes whose constructor is safe with any argument values of the declared types: nothing
that opens, writes, imports, downloads or runs what an argument names. The package re-export
(``sslkit.objectives.SimCLR`` for ``sslkit.objectives.simclr.SimCLR``) is accepted as the same class.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from typing import Any

from sslkit.errors import RefusedInput

OBJECTIVES: tuple[str, ...] = (
    "sslkit.objectives.barlowtwins.BarlowTwins",
    "sslkit.objectives.byol.BYOL",
    "sslkit.objectives.care.CARE",
    "sslkit.objectives.dino.DINO",
    "sslkit.objectives.dinov2.DINOv2",
    "sslkit.objectives.ijepa.IJEPA",
    "sslkit.objectives.lejepa.LeJEPA",
    "sslkit.objectives.mae.MAE",
    "sslkit.objectives.mocov3.MoCoV3",
    "sslkit.objectives.msn.MSN",
    "sslkit.objectives.nnclr.NNCLR",
    "sslkit.objectives.simclr.SimCLR",
    "sslkit.objectives.simmim.SimMIM",
    "sslkit.objectives.simsiam.SimSiam",
    "sslkit.objectives.swav.SwAV",
    "sslkit.objectives.tico.TiCo",
    "sslkit.objectives.vicreg.VICReg",
)

SLOTS: dict[str, tuple[str, ...]] = {
    "aux_loss": (
        "sslkit.objectives.rotation.FourFoldRotation",
    ),
    "transform": (
        "sslkit.transforms.byol.BYOLViews",
        "sslkit.transforms.gpu.BatchViews",
        "sslkit.transforms.gpu.UInt8Image",
        "sslkit.transforms.mask_views.MaskedImageViews",
        "sslkit.transforms.multicrop.MultiCropViews",
        "sslkit.transforms.rotation.WithRotationView",
        "sslkit.transforms.shared_augment.WithOriginal",
        "sslkit.transforms.views.EvalTransform",
        "sslkit.transforms.views.SimCLRViews",
    ),
    "collator": (
        "sslkit.masking.multiblock.MultiBlockMaskCollator",
        "sslkit.masking.block_masks.IBOTMaskCollator",
        "sslkit.masking.random_masks.RandomMaskCollator",
        "sslkit.masking.random_masks.SimMIMMaskCollator",
        "sslkit.transforms.shared_augment.SharedAugmentCollator",
    ),
}

# Which slot a hyper-parameter (or an ``init_args`` key of a listed class) holds. A spec nested in a
# spec whose key is not listed here stays in its parent's slot (a transform wrapping a transform).
SLOT_OF_KEY: dict[str, str] = {
    "aux_loss": "aux_loss",
    "transform": "transform",
    "train_transform": "transform",
    "eval_transform": "transform",
    "rotation_view": "transform",
    "collate_fn": "collator",
    "collator": "collator",
}

# Constructor arguments the host fills in when it builds a slot's class (never given by the spec).
FILLED_BY_HOST: dict[str, tuple[str, ...]] = {
    "aux_loss": ("in_dim",),  # the backbone width
}

SPEC_KEYS = ("class_path", "init_args")
# Keys LightningCLI adds to ``hyper_parameters``; sslkit never calls them (``_class_path`` is checked).
CLI_KEYS = ("_instantiator", "_class_path")


def _aliases(class_path: str) -> tuple[str, str]:
    """``pkg.module.Class`` and the package re-export ``pkg.Class``."""
    module, _, name = class_path.rpartition(".")
    return class_path, f"{module.rpartition('.')[0]}.{name}"


def allowed(slot: str) -> dict[str, str]:
    """Accepted spellings of the classes of ``slot`` (``"objective"`` or a :data:`SLOTS` key) → canonical path."""
    paths = OBJECTIVES if slot == "objective" else SLOTS.get(slot, ())
    return {alias: path for path in paths for alias in _aliases(path)}


def lookup(class_path: Any, slot: str | None, where: str) -> str:
    """The canonical path of ``class_path`` if the registry lists it for ``slot``; else :class:`RefusedInput`.

    Nothing is imported: the check is on the string.
    """
    if slot is None:
        raise RefusedInput(f"{where} names the class {class_path!r}, but no class may be named there")
    canonical = allowed(slot).get(class_path) if isinstance(class_path, str) else None
    if canonical is None:
        names = sorted(set(allowed(slot).values()))
        hint = f"one of {names}" if len(names) <= 6 else "a class listed in sslkit.objectives.registry"
        raise RefusedInput(f"{where} = {class_path!r} is not an sslkit {slot.replace('_', ' ')} class; a checkpoint may only name {hint}")
    return canonical


def import_class(canonical: str) -> type:
    """Import a class the registry lists (the package's one place that imports a class by name)."""
    if canonical not in OBJECTIVES and not any(canonical in paths for paths in SLOTS.values()):
        raise RefusedInput(f"{canonical!r} is not in sslkit's registry (sslkit.objectives.registry)")
    module_name, _, name = canonical.rpartition(".")
    cls = getattr(importlib.import_module(module_name), name, None)
    if not inspect.isclass(cls):
        raise RefusedInput(f"{canonical!r} is listed in sslkit's registry but is not a class (a stale entry)")
    return cls


def constructor_params(cls: type) -> tuple[set[str], set[str]]:
    """``(accepted, required)`` keyword names of ``cls(...)``, following ``**kwargs`` to base classes."""
    accepted: set[str] = set()
    required: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                accepted.add(p.name)
                if p.default is p.empty and klass is cls:
                    required.add(p.name)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return accepted, required


def check_init_args(cls: type, init_args: dict[str, Any], where: str, filled: tuple[str, ...] = ()) -> None:
    """Refuse ``init_args`` keys that ``cls``'s constructor does not take, or that the host fills in."""
    accepted, required = constructor_params(cls)
    for key in init_args:
        if key in filled:
            raise RefusedInput(f"{where}.{key} is filled in by sslkit, not by the checkpoint (got {init_args[key]!r})")
        if key not in accepted:
            raise RefusedInput(f"{where}.{key} = {init_args[key]!r} is not a {cls.__name__} argument")
    missing = sorted(required - set(init_args) - set(filled))
    if missing:
        raise RefusedInput(f"{where} lacks {missing[0]!r}, a required {cls.__name__} argument")


def check_spec(spec: Any, slot: str | None, where: str, filled: tuple[str, ...] = ()) -> tuple[type, dict[str, Any]]:
    """Validate one ``{"class_path", "init_args"}`` spec and the specs nested in it; returns ``(cls, init_args)``."""
    if not isinstance(spec, dict) or "class_path" not in spec or set(spec) - set(SPEC_KEYS):
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise RefusedInput(f"{where} must be {{'class_path': ..., 'init_args': {{...}}}}, got keys {keys}")
    canonical = lookup(spec["class_path"], slot, f"{where}.class_path")
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, dict):
        raise RefusedInput(f"{where}.init_args must be a mapping, got {init_args!r}")
    for key, value in init_args.items():
        check_nested(value, SLOT_OF_KEY.get(key, slot), f"{where}.init_args.{key}")
    cls = import_class(canonical)
    check_init_args(cls, init_args, f"{where}.init_args", (*FILLED_BY_HOST.get(slot or "", ()), *filled))
    return cls, init_args


def check_nested(value: Any, slot: str | None, where: str) -> None:
    """Every spec anywhere inside ``value`` must be a valid spec of ``slot``."""
    for path, spec in find_specs(value, where):
        check_spec(spec, slot, path)


def find_specs(value: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, spec)`` for the outermost dicts with a ``class_path`` key inside ``value``."""
    if isinstance(value, dict):
        if "class_path" in value:
            yield where, value
            return
        for key, item in value.items():
            yield from find_specs(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from find_specs(item, f"{where}[{i}]")


def build(spec: dict[str, Any], slot: str, where: str, **filled: Any) -> Any:
    """Check ``spec`` for ``slot`` (nested specs included), then build it with ``filled`` added.

    Nested specs stay plain dicts: the built class receives them as data (e.g. to build them itself
    with :func:`build`), never as instances made here.
    """
    cls, init_args = check_spec(spec, slot, where, tuple(filled))
    return cls(**init_args, **filled)


def build_aux_loss(spec: dict[str, Any] | None, in_dim: int) -> Any:
    """An objective's auxiliary loss from a plain ``{"class_path", "init_args"}`` spec (``None``: none).

    The spec stays plain data in the checkpoint's hyper-parameters (weights-only loading); the class
    must be listed in ``SLOTS["aux_loss"]``, takes ``in_dim`` (the backbone width, filled in here)
    plus ``init_args``, and is called as ``aux(backbone, batch) -> scalar loss``.
    """
    return None if spec is None else build(spec, "aux_loss", "aux_loss", in_dim=in_dim)


# ``timm.create_model`` arguments that fetch weights or configs from a file, a URL or the Hub: a
# checkpoint or ``config.json`` never sets them (a falsy ``pretrained`` is harmless and accepted).
LOADING_MODEL_ARGS = (
    "pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir",
    "pretrained_strict", "pretrained_filter_fn", "feature_cfg",
)
SSLKIT_ARCHITECTURES = ("resnet18_cifar",)  # built by sslkit.backbones.create_backbone, not by timm
_ARCH_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?")  # timm name, optionally with a pretrained tag
_LOCATION = re.compile(r"[/\\:]|^[~.]")  # a path, URL or hub name (``hf-hub:``, ``timm/``, ``./x``, ``~/x``)


def check_architecture(name: Any, model_args: dict[str, Any], where: str, args_where: str) -> None:
    """Refuse an architecture a checkpoint or ``config.json`` names unless it is a plain, local build.

    ``name`` must be a timm registry name (or sslkit's ``resnet18_cifar``), never a hub name, path or
    URL; ``model_args`` may not set :data:`LOADING_MODEL_ARGS`, and no string in them may look like
    a path, URL or hub name (so nothing is read from disk or the network while building it).
    """
    import timm

    if not isinstance(name, str) or not _ARCH_NAME.fullmatch(name) or not (
        name in SSLKIT_ARCHITECTURES or timm.is_model(name)
    ):
        raise RefusedInput(f"{where} = {name!r} is not a timm architecture name (hub names, paths and URLs are refused)")
    if not isinstance(model_args, dict):
        raise RefusedInput(f"{args_where} must be a mapping of architecture arguments, got {model_args!r}")
    for key, value in model_args.items():
        if key in LOADING_MODEL_ARGS and value not in (None, False):
            raise RefusedInput(f"{args_where}.{key} = {value!r} would load weights or a config from elsewhere; refused")
        check_plain_value(value, f"{args_where}.{key}")


def check_plain_value(value: Any, where: str) -> None:
    """Numbers, booleans, short names and lists/dicts of them; no path, URL, hub name or class spec."""
    if isinstance(value, str):
        if _LOCATION.search(value) or len(value) > 100:
            raise RefusedInput(f"{where} = {value!r} looks like a path, URL or hub name; refused")
    elif isinstance(value, dict):
        if "class_path" in value:
            lookup(value["class_path"], None, f"{where}.class_path")
        for key, item in value.items():
            check_plain_value(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain_value(item, f"{where}[{i}]")
