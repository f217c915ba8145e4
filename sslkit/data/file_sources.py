"""Sources that read files users have: image folders, ImageNet, file lists, Parquet/Arrow exports.

Samples carry file paths (or, for Parquet/Arrow, the encoded bytes of the image column), so the
writer's workers read and pass the original bytes through. See :mod:`sslkit.data.sources`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sslkit.data.sources import ImageSource, Sample
from sslkit.errors import UserError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
LISTING_WINDOW = 100_000  # streamed file listings: paths shuffled together (a few MB of memory)
BYTES_WINDOW = 10_000  # Parquet/Arrow: encoded images held for the shuffle (~1 GB at ImageNet sizes)
VAL_LABEL_FILES = ("LOC_val_solution.csv", "val_labels.txt", "val_labels.csv")


def folder_source(root: str | Path, *, split: str | None = None) -> ImageSource:
    """Images under ``root`` (or ``root/split`` when that folder exists).

    Class sub-folders give labels (sorted folder names are the class names; images anywhere below
    a class folder belong to it). A folder without sub-folders is unlabeled and streamed: its
    listing (``os.scandir``, no per-file work) feeds the writer as it goes, so writing starts at
    once even for millions of files. Keys are relative paths without suffix, every character other
    than ``[A-Za-z0-9_-]`` replaced by ``_`` (WebDataset splits keys at dots).
    """
    root = Path(root)
    if split and (root / split).is_dir():
        root = root / split
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        return flat_folder_source(root)
    files = [(f, label) for label, d in enumerate(class_dirs) for f in _images_under(d)]
    return _listed(f"folder:{root.name}", root, files, tuple(d.name for d in class_dirs))


def flat_folder_source(root: Path) -> ImageSource:
    """Unlabeled images directly in ``root``, streamed in directory order (see :func:`folder_source`)."""

    def samples() -> Iterator[Sample]:
        found = False
        with os.scandir(root) as entries:
            for entry in entries:
                suffix = os.path.splitext(entry.name)[1].lower()
                if suffix in IMAGE_SUFFIXES and entry.is_file():
                    found = True
                    yield _flat_key(entry.name), entry.path, None
        if not found:
            raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")

    return ImageSource(f"folder:{root.name}", None, None, samples, shuffle_window=LISTING_WINDOW)


def imagenet_source(root: str | Path, *, split: str = "train", labels: str | Path | None = None) -> ImageSource:
    """ImageNet-1k as distributed: ``train/<synset>/*.JPEG``; ``val/`` flat with a label file.

    ``root`` holds ``train/`` and ``val/`` (or is the Kaggle download, with them under
    ``ILSVRC/Data/CLS-LOC``). The val labels come from ``labels``, else the first of
    ``LOC_val_solution.csv`` (Kaggle: ``ImageId,PredictionString``), ``val_labels.txt`` or
    ``val_labels.csv`` (lines ``FILE LABEL``, a synset or an index) found in ``root``, ``val/`` or
    their parents. A val folder already sorted into synset folders is read like train. Class
    names are the sorted train synsets (``n01440764`` is label 0), as torchvision and timm use.
    """
    root = Path(root)
    base = next((b for b in (root, root / "ILSVRC" / "Data" / "CLS-LOC") if (b / split).is_dir()), None)
    if base is None:
        raise UserError(f"imagenet: no {split}/ folder in {root} or {root}/ILSVRC/Data/CLS-LOC")
    folder = base / split
    synset_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if synset_dirs:
        files = [(f, label) for label, d in enumerate(synset_dirs) for f in _images_under(d)]
        return _listed(f"imagenet:{split}", folder, files, tuple(d.name for d in synset_dirs))
    label_file = Path(labels) if labels else _find_label_file([root, folder, base, root.parent])
    table = _read_val_labels(label_file)
    train = base / "train"
    class_names = tuple(sorted(p.name for p in train.iterdir() if p.is_dir())) if train.is_dir() else ()
    class_names = class_names or tuple(sorted({v for v in table.values() if not v.isdigit()}))
    index = {name: i for i, name in enumerate(class_names)}
    files, unlabeled = [], []
    for path in _images_under(folder):
        name = os.path.basename(path)
        value = table.get(os.path.splitext(name)[0], table.get(name))
        if value is None:
            unlabeled.append(name)
            continue
        files.append((path, int(value) if value.isdigit() else index[value]))
    if unlabeled:
        raise UserError(
            f"imagenet: {len(unlabeled)} images in {folder} have no label in {label_file}"
            f" (first: {unlabeled[0]}); pass the matching file with --labels"
        )
    return _listed(f"imagenet:{split}", folder, files, class_names or None)


def filelist_source(path: str | Path) -> ImageSource:
    """Images named by a CSV or JSONL file: ``path`` and an optional ``label`` per row.

    CSV: a header naming ``path`` (and ``label``), or no header and ``path[,label]`` rows. JSONL:
    one object per line with those keys. Relative paths are relative to the list's folder.
    Integer labels are used as they are (no class names); other labels are class names, sorted,
    and numbered in that order. A row without a label is unlabeled.
    """
    path = Path(path)
    rows = _jsonl_rows(path) if path.suffix.lower() in (".jsonl", ".json") else _csv_rows(path)
    if not rows:
        raise UserError(f"filelist {path}: no rows")
    raw_labels = {str(label) for _, label in rows if label not in (None, "")}
    named = any(not label.lstrip("-").isdigit() for label in raw_labels)
    class_names = tuple(sorted(raw_labels)) if named else None
    index = {name: i for i, name in enumerate(class_names or ())}
    files = []
    for file, label in rows:
        target = Path(file) if os.path.isabs(file) else path.parent / file
        value = None if label in (None, "") else index[str(label)] if named else int(label)
        files.append((target, value))
    return _listed(f"filelist:{path.stem}", path.parent, files, class_names)


def parquet_source(
    root: str | Path, *, image_column: str | None = None, label_column: str | None = None
) -> ImageSource:
    """A local Hugging Face ``datasets`` export: ``*.parquet`` or ``*.arrow`` files (``root`` or under it).

    The image column (``image_column``, else the first ``struct<bytes, path>`` column, the
    ``datasets.Image`` feature, or binary column) is passed through as encoded bytes, read with
    pyarrow one record batch at a time, so the export streams in file order; the writer shuffles
    within :data:`BYTES_WINDOW` samples. Labels come from ``label_column`` (default ``label`` when
    present), class names from the ``ClassLabel`` feature in the export's metadata.
    """
    from sslkit.data.arrow_reader import ArrowExport

    export = ArrowExport.open(Path(root), image_column=image_column, label_column=label_column)
    return ImageSource(
        f"parquet:{Path(root).stem}", export.class_names, export.num_rows, export.samples,
        shuffle_window=BYTES_WINDOW,
    )


def _listed(
    name: str, root: Path, files: list[tuple[str | Path, int | None]], class_names: tuple[str, ...] | None
) -> ImageSource:
    if not files:
        raise UserError(f"{name}: no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    paths = [str(f) for f, _ in files]
    prefix = str(root).rstrip(os.sep) + os.sep
    names = [f[len(prefix):] if f.startswith(prefix) else f for f in paths]  # relative to root where below it
    keys = unique_keys([os.path.splitext(n)[0] for n in names])
    labels = [label for _, label in files]

    def samples() -> Iterator[Sample]:
        yield from zip(keys, paths, labels)

    return ImageSource(name, class_names, len(files), samples)


def _images_under(folder: Path) -> list[str]:
    """Image files below ``folder`` in sorted path order (as ``sorted(Path.rglob)`` gives), no stat each.

    ``os.scandir`` walk, each folder's entries in name order, descending into a sub-folder where its
    name sorts (the order of sorted path components); symlinked folders are not entered (``rglob``'s
    rule), symlinked files are kept, unreadable folders skipped (logged). ~6 us a file with the keys
    and the shuffle, against ~31 for ``Path.rglob`` + ``is_file`` + ``sorted(Path)``: ImageNet's 1.28M
    files list in ~8 s before the first shard starts.
    """
    found: list[str] = []

    def walk(path: str) -> None:
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError:
            logger.warning("skipped %s: permission denied", path)
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                found.append(entry.path)

    walk(str(folder))
    return found


def unique_keys(paths: list[str]) -> list[str]:
    """Sanitised keys (``[A-Za-z0-9_-]``), made unique by appending ``_``."""
    keys, seen = [], set()
    for path in paths:
        key = re.sub(r"[^A-Za-z0-9_-]", "_", path.strip("/"))
        while key in seen:
            key += "_"
        seen.add(key)
        keys.append(key)
    return keys


def _flat_key(name: str) -> str:
    """Key of a file in a streamed folder: no set of seen keys (millions), so an altered name gets a hash."""
    stem = os.path.splitext(name)[0]
    key = re.sub(r"[^A-Za-z0-9_-]", "_", stem)
    if key != stem:
        key += "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return key


def _find_label_file(folders: list[Path]) -> Path:
    for folder in folders:
        for name in VAL_LABEL_FILES:
            if (folder / name).is_file():
                return folder / name
    raise UserError(
        f"imagenet: no val label file ({', '.join(VAL_LABEL_FILES)}) in {folders[0]} or {folders[1]};"
        " pass one with --labels"
    )


def _read_val_labels(path: Path) -> dict[str, str]:
    """File stem (or name) -> synset or index, from Kaggle's CSV or ``FILE LABEL`` lines."""
    if not path.is_file():
        raise UserError(f"--labels {path}: no such file")
    table = {}
    for line in path.read_text().splitlines():
        parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
        if len(parts) < 2 or parts[0] in ("ImageId", "path", "file", "filename"):
            continue
        table[os.path.splitext(parts[0])[0]] = parts[1]
    if not table:
        raise UserError(f"{path}: no 'FILE LABEL' rows")
    return table


def _csv_rows(path: Path) -> list[tuple[str, Any]]:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if rows and "path" in rows[0]:
        columns = rows.pop(0)
        at, label_at = columns.index("path"), columns.index("label") if "label" in columns else None
        return [(r[at], r[label_at] if label_at is not None and label_at < len(r) else None) for r in rows]
    return [(r[0], r[1] if len(r) > 1 else None) for r in rows]


def _jsonl_rows(path: Path) -> list[tuple[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            rows.append((record["path"], record.get("label")))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{path}:{number}: expected a JSON object with a 'path' key") from None
    return rows
