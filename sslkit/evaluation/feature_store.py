"""Features on disk: extract once (resumable, chunked), reuse memory-mapped for kNN and probes.

A split directory holds, once complete::

    feats.npy    (N, D) float32, read with mmap
    labels.npy   (N,) int64
    keys.txt     one sample key per line, row order
    meta.json    {"complete": true, "num_samples", "dim", "identity": {checkpoint, pooling,
                  preprocessing, ...}, ...}

While extracting, rows are committed in chunks under ``partial/``; ``partial/state.json`` (replaced
atomically after each chunk's files are written) is the only record of what is done, so an
interrupted run resumes after the last committed chunk, never duplicating or losing a row. The
loader must replay the same order (eval loaders do); the skipped keys are checked against disk.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sslkit.evaluation.features import Features, Pooling, iter_features

META = "meta.json"
PARTIAL = "partial"


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)  # atomic: a reader sees the old or the new file, never half of one


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def is_complete(split_dir: str | Path, identity: dict[str, Any] | None = None) -> bool:
    """Whether ``split_dir`` holds finished features (made with ``identity``, if given)."""
    meta = _read_json(Path(split_dir) / META)
    return bool(meta and meta.get("complete") and (identity is None or meta["identity"] == identity))


class _ChunkWriter:
    """Buffers rows and commits fixed-size chunks under ``partial/``."""

    def __init__(self, root: Path, identity: dict[str, Any], chunk_size: int) -> None:
        self.dir, self.chunk_size = root / PARTIAL, chunk_size
        self.dir.mkdir(parents=True, exist_ok=True)
        state = _read_json(self.dir / "state.json")
        if state is not None and state["identity"] != identity:
            raise RuntimeError(
                f"{root} holds a partial extraction made with different settings; "
                f"delete {self.dir} or pass overwrite=True.\nstored: {state['identity']}\nnow: {identity}"
            )
        self.state = state or {"identity": identity, "chunks": [], "num_rows": 0}
        self.buffer: list[tuple[np.ndarray, np.ndarray, list[str]]] = []
        self.buffered = 0

    def done_keys(self) -> list[str]:
        return [k for c in self.state["chunks"] for k in (self.dir / f"{c}.keys.txt").read_text().splitlines()]

    def add(self, feats: np.ndarray, labels: np.ndarray, keys: list[str]) -> None:
        self.buffer.append((feats, labels, keys))
        self.buffered += len(keys)
        while self.buffered >= self.chunk_size:
            self.flush(self.chunk_size)

    def flush(self, num: int | None = None) -> None:
        if not self.buffered:
            return
        feats = np.concatenate([b[0] for b in self.buffer])
        labels = np.concatenate([b[1] for b in self.buffer]).astype(np.int64)
        keys = [k for b in self.buffer for k in b[2]]
        num = self.buffered if num is None else num
        name = f"chunk_{len(self.state['chunks']):06d}"
        np.save(self.dir / f"{name}.feats.npy", np.ascontiguousarray(feats[:num], dtype=np.float32))
        np.save(self.dir / f"{name}.labels.npy", labels[:num])
        (self.dir / f"{name}.keys.txt").write_text("".join(f"{k}\n" for k in keys[:num]))
        self.state["chunks"].append(name)
        self.state["num_rows"] += num
        _write_json(self.dir / "state.json", self.state)  # the commit point
        self.buffer = [(feats[num:], labels[num:], keys[num:])] if num < len(keys) else []
        self.buffered = len(keys) - num

    def consolidate(self, root: Path, meta: dict[str, Any]) -> None:
        chunks = self.state["chunks"]
        if not chunks:
            raise ValueError("the loader yielded no samples")
        dim = np.load(self.dir / f"{chunks[0]}.feats.npy", mmap_mode="r").shape[1]
        out = np.lib.format.open_memmap(root / "feats.npy", "w+", np.float32, (self.state["num_rows"], dim))
        labels, row = [], 0
        for c in chunks:  # streamed: never more than one chunk in memory
            part = np.load(self.dir / f"{c}.feats.npy", mmap_mode="r")
            out[row : row + len(part)] = part
            row += len(part)
            labels.append(np.load(self.dir / f"{c}.labels.npy"))
        out.flush()
        del out
        np.save(root / "labels.npy", np.concatenate(labels))
        keys = self.done_keys()
        (root / "keys.txt").write_text("".join(f"{k}\n" for k in keys))
        if len(set(keys)) != len(keys):
            warnings.warn(f"{root}: sample keys are not unique; the loader repeats samples", stacklevel=3)
        _write_json(root / META, {**meta, "complete": True, "num_samples": row, "dim": int(dim)})
        shutil.rmtree(self.dir)


def extract_to_disk(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    out_dir: str | Path,
    identity: dict[str, Any],
    pooling: Pooling = Pooling(),
    device: str | torch.device = "cpu",
    chunk_size: int = 16384,
    progress: bool = True,
    total: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Extract one split's features into ``out_dir`` (resumable; a no-op when already complete).

    Args:
        model: frozen backbone (timm contract).
        loader: eval batches in a replayable order.
        out_dir: the split directory.
        identity: what makes these features these features (checkpoint path + sha256,
            preprocessing, ...); pooling is added here. A resume or a reuse must match it.
        pooling: which vector represents an image.
        device: where the forward runs.
        chunk_size: rows per committed chunk: the most work an interruption can lose.
        progress: tqdm bar.
        total: number of samples, for the bar.
        overwrite: discard any existing (partial or complete) features in ``out_dir``.

    Returns:
        ``out_dir``.
    """
    root = Path(out_dir)
    # JSON round trip: tuples become lists here as they do on disk, so identities compare equal.
    identity = json.loads(json.dumps({**identity, "pooling": pooling.to_dict()}, sort_keys=True))
    if overwrite and root.exists():
        shutil.rmtree(root)
    if is_complete(root, identity):
        return root
    if (root / META).exists():
        raise RuntimeError(f"{root} holds features made with other settings; pass overwrite=True")
    writer = _ChunkWriter(root, identity, chunk_size)
    done_keys, checked = writer.done_keys(), 0
    for feats, labels, keys in iter_features(
        model, loader, pooling, device, skip=writer.state["num_rows"], progress=progress, total=total
    ):
        if feats is None:  # already on disk: the replayed order must be the stored one
            if keys != done_keys[checked : checked + len(keys)]:
                raise RuntimeError(f"the loader does not replay the order stored in {writer.dir}")
            checked += len(keys)
            continue
        writer.add(feats, labels, keys)
    writer.flush()
    writer.consolidate(root, {"identity": identity})
    return root


def load_features(split_dir: str | Path, mmap: bool = True) -> Features:
    """A complete split's features; ``feats`` is memory-mapped read-only when ``mmap``."""
    root = Path(split_dir)
    if not is_complete(root):
        raise FileNotFoundError(f"{root} holds no complete features (run `sslkit eval extract`)")
    return Features(
        np.load(root / "feats.npy", mmap_mode="r" if mmap else None),
        np.load(root / "labels.npy"),
        (root / "keys.txt").read_text().splitlines(),
    )


def read_meta(split_dir: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a split directory."""
    meta = _read_json(Path(split_dir) / META)
    if meta is None:
        raise FileNotFoundError(f"{split_dir}/{META} is missing")
    return meta
