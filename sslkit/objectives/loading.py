"""Rebuild an objective from a Lightning checkpoint without unpickling or instantiating anything it names.

Two rules (``docs/design.md``, "Checkpoints"): the file is read with ``torch.load(weights_only=True)``
(tensors and plain containers only), and every class its ``hyper_parameters`` name is checked against
:mod:`sslkit.objectives.registry`, arguments included, before anything is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslkit.distributed.checkpoint_io import read_checkpoint, unreadable_reason  # noqa: F401 (public here too)
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.registry import (
    SLOT_OF_KEY,
    RefusedInput,
    check_architecture,
    check_init_args,
    check_nested,
    import_class,
    lookup,
)

# What LightningCLI writes as ``_instantiator``; a checkpoint naming any other callable is refused.
_CLI_INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"


def checked_hyper_parameters(ckpt: dict[str, Any], where: str) -> tuple[type[SSLObjective], dict[str, Any]]:
    """``(objective class, constructor arguments)`` of a checkpoint, every named class checked, nothing built.

    Raises:
        RefusedInput: naming the key and value that a checkpoint may not hold.
    """
    canonical = lookup(ckpt.get("sslkit_objective"), "objective", f"{where}: sslkit_objective")
    hparams = ckpt.get("hyper_parameters") or {}
    if not isinstance(hparams, dict):
        raise RefusedInput(f"{where}: hyper_parameters must be a mapping, got {type(hparams).__name__}")
    hparams = dict(hparams)
    instantiator = hparams.pop("_instantiator", _CLI_INSTANTIATOR)
    if instantiator != _CLI_INSTANTIATOR:
        raise RefusedInput(f"{where}: hyper_parameters._instantiator = {instantiator!r} is not LightningCLI's; refused")
    cli_class = hparams.pop("_class_path", None)
    if cli_class is not None and lookup(cli_class, "objective", f"{where}: hyper_parameters._class_path") != canonical:
        raise RefusedInput(f"{where}: hyper_parameters._class_path = {cli_class!r} is not {canonical}")
    for key, value in hparams.items():
        check_nested(value, SLOT_OF_KEY.get(key), f"{where}: hyper_parameters.{key}")
    cls = import_class(canonical)
    check_init_args(cls, hparams, f"{where}: hyper_parameters")
    if "backbone" in hparams:
        check_architecture(hparams["backbone"], hparams.get("backbone_kwargs") or {},
                           f"{where}: hyper_parameters.backbone", f"{where}: hyper_parameters.backbone_kwargs")
    return cls, hparams


def load_objective(path: str | Path, strict: bool = True) -> SSLObjective:
    """Rebuild the objective stored in an sslkit Lightning checkpoint.

    The class comes from the checkpoint's ``sslkit_objective`` entry and must be listed in
    :data:`sslkit.objectives.registry.OBJECTIVES`; its constructor arguments come from
    ``hyper_parameters`` (checked by :func:`checked_hyper_parameters`).
    """
    ckpt = read_checkpoint(path)
    cls, hparams = checked_hyper_parameters(ckpt, str(path))
    model = cls(**hparams)
    try:
        model.load_state_dict(ckpt.get("state_dict") or {}, strict=strict)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise RefusedInput(f"{path}: its state_dict does not fit {cls.__name__} built from its hyper_parameters ({first})") from None
    return model.eval()
