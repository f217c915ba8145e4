"""Reading a local Hugging Face ``datasets`` export (Parquet or Arrow files) with pyarrow.

``datasets.Dataset.to_parquet`` and the Hub's Parquet conversion write ``*.parquet``;
``save_to_disk`` writes Arrow IPC streams (``data-00000-of-00001.arrow``). Both keep the features
(``Image``, ``ClassLabel`` with its names) as JSON under the schema metadata key ``huggingface``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sslkit.errors import UserError

BATCH_ROWS = 256


@dataclass(frozen=True)
class ArrowExport:
    """The files of one export and where its images and labels are."""

    files: tuple[Path, ...]
    image_column: str
    label_column: str | None
    class_names: tuple[str, ...] | None
    num_rows: int | None

    @classmethod
    def open(cls, root: Path, *, image_column: str | None, label_column: str | None) -> ArrowExport:
        files = (root,) if root.is_file() else tuple(
            sorted(p for p in root.rglob("*") if p.suffix in (".parquet", ".arrow") and p.is_file())
        )
        if not files:
            raise UserError(f"parquet: no *.parquet or *.arrow files in {root}")
        schema = _schema(files[0])
        image = image_column or _image_column(schema)
        if image not in schema.names:
            raise UserError(f"parquet: {files[0]} has no column {image!r} (columns: {', '.join(schema.names)})")
        label = label_column or ("label" if "label" in schema.names else None)
        if label is not None and label not in schema.names:
            raise UserError(f"parquet: {files[0]} has no column {label!r} (columns: {', '.join(schema.names)})")
        names = _class_names(schema, label)
        rows = sum(_num_rows(f) for f in files) if all(f.suffix == ".parquet" for f in files) else None
        return cls(files, image, label, names, rows)

    def samples(self) -> Iterator[tuple[str, Any, int | None]]:
        """``(key, encoded bytes or file path, label)`` per row, file by file; keys ``<file>-<row>``."""
        columns = [self.image_column] + ([self.label_column] if self.label_column else [])
        for file in self.files:
            stem = "".join(c if c.isalnum() or c in "_-" else "_" for c in file.stem)
            row = 0
            for batch in _batches(file, columns):
                images = batch.column(self.image_column).to_pylist()
                labels = batch.column(self.label_column).to_pylist() if self.label_column else None
                for i, value in enumerate(images):
                    label = labels[i] if labels is not None else None
                    yield f"{stem}-{row:08d}", _image_ref(value, file), None if label is None else int(label)
                    row += 1


def _batches(file: Path, columns: list[str]) -> Iterator[Any]:
    import pyarrow.parquet as pq

    if file.suffix == ".parquet":
        yield from pq.ParquetFile(file).iter_batches(batch_size=BATCH_ROWS, columns=columns)
        return
    with _open_ipc(file) as reader:
        for batch in reader:
            yield batch.select(columns)


def _open_ipc(file: Path) -> Any:
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.memory_map(str(file)))
    except pa.ArrowInvalid:
        reader = pa.ipc.open_file(pa.memory_map(str(file)))
        return _FileBatches(reader)


class _FileBatches:
    """An Arrow IPC *file* reader iterated like a stream reader."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    def __enter__(self) -> Iterator[Any]:
        return (self.reader.get_batch(i) for i in range(self.reader.num_record_batches))

    def __exit__(self, *exc: object) -> None:
        return None


def _schema(file: Path) -> Any:
    import pyarrow.parquet as pq

    if file.suffix == ".parquet":
        return pq.read_schema(file)
    with _open_ipc(file) as reader:
        return reader.schema if hasattr(reader, "schema") else next(iter(reader)).schema


def _num_rows(file: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(file).metadata.num_rows


def _image_column(schema: Any) -> str:
    import pyarrow as pa

    for field in schema:
        if pa.types.is_struct(field.type) and field.type.get_field_index("bytes") >= 0:
            return field.name
    for field in schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            return field.name
    raise UserError(
        f"parquet: no image column (struct<bytes, path> or binary) among {', '.join(schema.names)};"
        " name it with --image-column"
    )


def _class_names(schema: Any, label: str | None) -> tuple[str, ...] | None:
    metadata = schema.metadata or {}
    if label is None or b"huggingface" not in metadata:
        return None
    try:
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
        names = features[label].get("names")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return tuple(names) if names else None


def _image_ref(value: Any, file: Path) -> Any:
    """The encoded bytes; a path (relative to the export) when only the path is stored."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        return str(file.parent / value["path"]) if value.get("path") else b""
    return value if value is not None else b""
