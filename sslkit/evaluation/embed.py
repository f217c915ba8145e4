"""``sslkit embed``: a checkpoint's eval-backbone features of shards or an image folder, to a file.

    sslkit embed --ckpt C --input SHARDS|FOLDER --out embeddings.npy|embeddings.parquet [--pool cls --last-k 4]

What ``lightly-embed`` users expect, on the ``eval extract`` path (the same backbone, preprocessing
and pooling give the same rows): ``.npy`` writes the ``(N, D)`` float32 features plus a sidecar
``<stem>.keys.csv`` (``key,label``; label -1 when unlabeled); ``.parquet`` writes one row per image
(``key``, ``label``, ``embedding``). An image folder is read like ``sslkit data shard --source
folder``: class sub-folders give labels, a flat folder none; an unreadable image is skipped, counted
and named.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sslkit.errors import UserError

if TYPE_CHECKING:
    import numpy as np

FORMATS = (".npy", ".parquet")
POOL_MODES = ("pooled", "cls", "mean", "cls_mean")  # sslkit.evaluation.features.POOL_MODES (help stays fast)


def keys_path(out: str | Path) -> Path:
    """The ``.npy`` output's sidecar: ``embeddings.npy`` -> ``embeddings.keys.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".keys.csv")


def write_embeddings(out: str | Path, feats: np.ndarray, keys: list[str], labels: np.ndarray) -> Path:
    """Write features with their sample keys and labels to ``out`` (``.npy`` + sidecar, or ``.parquet``).

    Each file is written to a temporary name and renamed, so a killed run leaves no half file.
    """
    import numpy as np

    out = Path(out)
    if out.suffix not in FORMATS:
        raise UserError(f"--out {out}: unknown format {out.suffix!r}; name it *.npy or *.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    feats, labels = np.ascontiguousarray(feats, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    tmp = out.with_name(out.name + ".tmp")
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        flat = pa.array(feats.reshape(-1))
        column = pa.FixedSizeListArray.from_arrays(flat, feats.shape[1])
        pq.write_table(pa.table({"key": keys, "label": labels, "embedding": column}), tmp)
    else:
        side, side_tmp = keys_path(out), keys_path(out).with_suffix(".csv.tmp")
        with open(side_tmp, "w", newline="") as f:
            csv.writer(f).writerows([("key", "label"), *zip(keys, labels.tolist())])
        with open(tmp, "wb") as f:
            np.save(f, feats)
        os.replace(side_tmp, side)
    os.replace(tmp, out)
    return out


def read_embeddings(path: str | Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(feats (N, D) float32, keys, labels (N,) int64)`` of a file :func:`write_embeddings` wrote."""
    import numpy as np

    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        feats = np.asarray(table.column("embedding").combine_chunks().flatten(), dtype=np.float32)
        keys = table.column("key").to_pylist()
        return feats.reshape(len(keys), -1), keys, np.asarray(table.column("label"), dtype=np.int64)
    with open(keys_path(path), newline="") as f:
        rows = list(csv.DictReader(f))
    return np.load(path), [r["key"] for r in rows], np.asarray([int(r["label"]) for r in rows], dtype=np.int64)


def _folder_batches(root: Path, transform: Any, batch_size: int, skipped: list[str]) -> Iterator[dict[str, Any]]:
    """Eval batches (``image``, ``label``, ``key``) of an image folder; unreadable files go to ``skipped``."""
    import torch
    from PIL import Image

    from sslkit.data.file_sources import folder_source

    images, labels, keys = [], [], []
    for key, path, label in folder_source(root):
        try:
            with Image.open(path) as image:
                images.append(transform(image.convert("RGB")))
        except (OSError, SyntaxError, ValueError):  # truncated / not an image: skip, count and name it
            skipped.append(str(path))
            continue
        labels.append(-1 if label is None else int(label))
        keys.append(key)
        if len(keys) == batch_size:
            yield {"image": torch.stack(images), "label": torch.tensor(labels), "key": keys}
            images, labels, keys = [], [], []
    if keys:
        yield {"image": torch.stack(images), "label": torch.tensor(labels), "key": keys}


def _is_shards(spec: str) -> bool:
    """Whether ``--input`` names shards (else an image folder); one line when it names nothing usable."""
    from sslkit.data.manifest import MANIFEST_NAME
    from sslkit.preflight import check_shards

    path = Path(spec)
    if "{" in spec or "://" in spec or path.suffix in (".tar", ".json") or (path / MANIFEST_NAME).is_file():
        check_shards(spec, "--input")
        return True
    if not path.is_dir():
        raise UserError(f"--input {spec} does not exist; point it at a shard folder (sslkit data shard), "
                        "its manifest.json, or an image folder")
    return False


def _loader(args: argparse.Namespace, transform: Any, skipped: list[str]) -> tuple[Any, int | None]:
    """The eval loader of ``--input`` (shards via ``build_eval_loader``, else an image folder) and its size."""
    from sslkit.data import build_eval_loader

    if _is_shards(args.input):
        loader = build_eval_loader(args.input, transform, args.batch_size, args.num_workers)
        return loader, getattr(getattr(loader, "dataset", None), "num_samples", None)
    return _folder_batches(Path(args.input), transform, args.batch_size, skipped), None


def embed(args: argparse.Namespace) -> Path:
    """Extract ``--ckpt``'s eval-backbone features of ``--input`` and write them to ``--out``."""
    import numpy as np
    import torch

    from sslkit.evaluation.features import Pooling, iter_features
    from sslkit.evaluation.matching import checkpoint_preprocessing
    from sslkit.objectives import load_objective

    if not Path(args.ckpt).is_file():
        raise UserError(f"--ckpt {args.ckpt} does not exist; pass an sslkit checkpoint (runs/.../checkpoints/last.ckpt)")
    if Path(args.out).suffix not in FORMATS:
        raise UserError(f"--out {args.out}: unknown format {Path(args.out).suffix!r}; name it *.npy or *.parquet")
    _is_shards(args.input)  # a wrong --input fails before the model loads
    backbone = load_objective(args.ckpt).eval_backbone()
    pre, sources = checkpoint_preprocessing(args.ckpt, backbone, args.input_size, args.resize, args.mean, args.std)
    print(f"preprocessing: {pre.input_size} px (resize {pre.resize}), mean {list(pre.mean)}, std {list(pre.std)} "
          f"(from {', '.join(sorted(set(sources.values())))})", file=sys.stderr)
    skipped: list[str] = []
    loader, total = _loader(args, pre.transform(), skipped)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    feats, labels, keys = [], [], []
    for f, y, k in iter_features(backbone, loader, Pooling(args.pool, args.last_k), device,
                                 progress=not args.no_progress, total=total):
        feats.append(f)
        labels.append(y)
        keys.extend(k)
    if skipped:
        print(f"skipped {len(skipped)} unreadable images: {', '.join(skipped[:5])}"
              f"{' ...' if len(skipped) > 5 else ''}", file=sys.stderr)
    if not feats:
        raise UserError(f"--input {args.input}: no readable images")
    return write_embeddings(args.out, np.concatenate(feats), keys, np.concatenate(labels))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sslkit embed", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", type=Path, required=True, help="sslkit objective checkpoint (its eval backbone embeds)")
    p.add_argument("--input", required=True, help="shard dir, manifest or brace pattern; or an image folder")
    p.add_argument("--out", type=Path, required=True, help="*.npy (+ <stem>.keys.csv) or *.parquet")
    p.add_argument("--pool", choices=POOL_MODES, default="pooled", help="image vector (default: backbone's own)")
    p.add_argument("--last-k", type=int, default=1, help="concatenate the pooled last k blocks")
    p.add_argument("--input-size", type=int, help="centre-crop size (default: the checkpoint's run record)")
    p.add_argument("--resize", type=int, help="shorter side before the crop (default: the run's)")
    p.add_argument("--mean", type=float, nargs=3, help="normalisation mean (default: the run's, else ImageNet's)")
    p.add_argument("--std", type=float, nargs=3, help="normalisation std (default: the run's, else ImageNet's)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-workers", type=int, default=4, help="shard loader workers")
    p.add_argument("--device", help="default: cuda when available, else cpu")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sslkit embed``: arguments are parsed before torch is imported (fast ``--help``)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    out = embed(args)
    print(f"wrote {out}" + (f" and {keys_path(out)}" if out.suffix == ".npy" else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
