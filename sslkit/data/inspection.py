"""``sslkit data inspect DIR``: counts, class histogram and a grid of random samples of a shard set.

Labels are read from the tar members (headers and the small ``cls`` members only; images are not
read), so the histogram shows what is in the shards, not what the manifest claims. Writes
``inspect.json`` (counts, histogram) and ``inspect.png`` (a grid of random samples with their class).
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from sslkit.data.verify import load_manifest

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
TILE = 96


def inspect_shards(directory: str | Path, out: str | Path | None = None, *, grid: int = 64, seed: int = 0) -> dict[str, Any]:
    """Summarise a shard set; writes ``inspect.json`` and ``inspect.png`` into ``out`` (default: the set).

    Args:
        directory: a folder written by ``sslkit data shard``.
        out: folder for the two files.
        grid: number of random samples in the grid.
        seed: which samples.
    """
    folder, manifest = load_manifest(directory)
    out = Path(out) if out is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    total = sum(s["num_samples"] for s in manifest["shards"])
    chosen = set(random.Random(seed).sample(range(total), min(grid, total)))
    labels: Counter[int] = Counter()
    formats: Counter[str] = Counter()
    tiles: list[tuple[bytes, int]] = []
    index = 0
    for shard in manifest["shards"]:
        for ext, image, label in _members(folder / shard["name"], wanted=chosen, first=index):
            formats[ext] += 1
            labels[label] += 1
            if image is not None:
                tiles.append((image, label))
        index += shard["num_samples"]
    names = manifest.get("class_names") or []
    summary = {
        "num_shards": len(manifest["shards"]),
        "num_samples": sum(formats.values()),
        "manifest_num_samples": manifest["num_samples"],
        "num_bytes": sum(s["num_bytes"] for s in manifest["shards"]),
        "image_formats": dict(sorted(formats.items())),
        "num_unlabeled": labels.pop(-1, 0),
        "class_counts": {(names[c] if c < len(names) else str(c)): n for c, n in sorted(labels.items())},
        "source": manifest.get("source"),
        "grid": str(out / "inspect.png"),
    }
    (out / "inspect.json").write_text(json.dumps(summary, indent=2) + "\n")
    sample_grid(tiles, names).save(out / "inspect.png")
    return summary


def _members(path: Path, *, wanted: set[int], first: int) -> list[tuple[str, bytes | None, int]]:
    """(image extension, image bytes when its index is wanted, label or -1) per sample, in shard order."""
    samples: dict[str, dict[str, Any]] = {}
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            sample = samples.setdefault(key, {"index": first + len(samples)})
            if ext == "cls":
                sample["label"] = int(tar.extractfile(member).read())
            elif ext in IMAGE_EXTENSIONS:
                sample["ext"] = ext
                if sample["index"] in wanted:
                    sample["image"] = tar.extractfile(member).read()
    return [(s.get("ext", "none"), s.get("image"), s.get("label", -1)) for s in samples.values()]


def sample_grid(tiles: list[tuple[bytes, int]], class_names: list[str], columns: int = 8) -> Image.Image:
    """Thumbnails (``TILE`` px) with their class name (or label) under each, ``columns`` per row."""
    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("RGB", (columns * TILE, rows * (TILE + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (data, label) in enumerate(tiles):
        x, y = (i % columns) * TILE, (i // columns) * (TILE + 14)
        try:
            with Image.open(io.BytesIO(data)) as image:
                thumb = image.convert("RGB")
                thumb.thumbnail((TILE, TILE))
        except Exception:  # an undecodable sample: leave its tile grey
            thumb = Image.new("RGB", (TILE, TILE), "grey")
        sheet.paste(thumb, (x + (TILE - thumb.width) // 2, y + (TILE - thumb.height) // 2))
        name = class_names[label] if 0 <= label < len(class_names) else ("-" if label < 0 else str(label))
        draw.text((x + 2, y + TILE), name[:15], fill="black")
    return sheet
