"""What a frozen-feature evaluation must agree on: the checkpoint's preprocessing, and bank vs queries.

Evaluation (``sslkit eval``, ``sslkit embed``) and publishing take their preprocessing from here, so the
features of ``eval`` and of the published model are computed the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from sslkit.errors import UserError
from sslkit.run_record import Preprocessing, RunRecord, dataset_from_manifest, from_checkpoint, resolve_preprocessing

log = logging.getLogger(__name__)


def backbone_img_size(backbone: nn.Module) -> int | None:
    """A ViT's fixed input size (``patch_embed.img_size``), if it has one."""
    img_size = getattr(getattr(backbone, "patch_embed", None), "img_size", None)
    return int(img_size[0]) if isinstance(img_size, (tuple, list)) else None


def checkpoint_record(ckpt: str | Path) -> RunRecord | None:
    """The run record inside a checkpoint (weights-only read)."""
    from sslkit.objectives.loading import read_checkpoint

    return from_checkpoint(read_checkpoint(ckpt))


def checkpoint_preprocessing(
    ckpt: str | Path, backbone: nn.Module, input_size: int | None = None, resize: int | None = None,
    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
) -> tuple[Preprocessing, dict[str, str]]:
    """The preprocessing of ``ckpt``'s run, overridden by any explicit value (see ``resolve_preprocessing``)."""
    return resolve_preprocessing(checkpoint_record(ckpt), backbone_img_size(backbone), input_size, resize, mean, std)


def check_bank_and_queries(train: Any, val: Any, input_size: int | None = None, ckpt: str | Path | None = None) -> None:
    """Refuse a bank and queries with different classes; warn (one line) on other disagreements.

    Raises:
        UserError: when both manifests list class names and they differ.
    """
    bank, queries = dataset_from_manifest(train), dataset_from_manifest(val)
    if bank is None or queries is None:
        return
    if bank.class_names and queries.class_names and bank.class_names != queries.class_names:
        raise UserError(
            f"the kNN bank {train} ({bank.name}: {_names(bank.class_names)}) and the queries {val} "
            f"({queries.name}: {_names(queries.class_names)}) have different classes; give two splits of one dataset"
        )
    if bank.name and queries.name and bank.name != queries.name:
        log.warning("bank %s is %s but queries %s are %s", train, bank.name, val, queries.name)
    if bank.image_size and queries.image_size and tuple(bank.image_size) != tuple(queries.image_size):
        log.warning("bank images are %s px, queries %s px: both are resized to %s", "x".join(map(str, bank.image_size)),
                    "x".join(map(str, queries.image_size)), input_size)
    record = checkpoint_record(ckpt) if ckpt is not None else None
    trained_on = record.train.name if record and record.train else None
    if trained_on and bank.name and trained_on != bank.name:
        log.warning("the checkpoint was pretrained on %s; evaluating it on %s", trained_on, bank.name)


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
