"""File-based sources, each on data the test makes, written with the ingest pipeline and read back.

ImageNet layout (synset folders; flat val + label file), file lists (CSV, JSONL), streamed flat
folders, and Hugging Face-style Parquet and Arrow exports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sslkit.data.datamodule import build_eval_loader
from sslkit.data.file_sources import filelist_source, folder_source, imagenet_source, parquet_source
from sslkit.data.ingest import ingest
from sslkit.errors import UserError
from tests.data.ingest_helpers import class_folder, image_bytes, read_samples


def _labels_by_key(out: Path) -> dict[str, int]:
    batches = build_eval_loader(out, None, batch_size=1, num_workers=0)
    return {key: int(label) for b in batches for key, label in zip(b["key"], b["label"])}


def test_imagenet_train_and_flat_val_with_kaggle_csv(tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    train = class_folder(root / "train", num_classes=3, per_class=4)
    (root / "train" / "c1" / "extra").mkdir()  # images below a synset folder still belong to it
    (root / "train" / "c1" / "extra" / "deep.JPEG").write_bytes(image_bytes(99))
    (root / "val").mkdir()
    rows = ["ImageId,PredictionString"]
    for i, synset in enumerate(["c2", "c0", "c1", "c2"]):
        (root / "val" / f"ILSVRC2012_val_{i:08d}.JPEG").write_bytes(image_bytes(100 + i))
        rows.append(f"ILSVRC2012_val_{i:08d},{synset} 10 20 30 40")
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")

    source = imagenet_source(root, split="train")
    assert source.class_names == ("c0", "c1", "c2") and len(source) == 13
    ingest(source, tmp_path / "train", max_samples_per_shard=5, progress=False)
    labels = _labels_by_key(tmp_path / "train")
    assert len(labels) == 13 and labels["c1_extra_deep"] == 1
    assert all(labels[k.replace("/", "_").removesuffix(".JPEG")] == int(k[1]) for k in train)
    assert read_samples(tmp_path / "train")["c2_img8"]["jpg"] == train["c2/img8.JPEG"]  # bytes kept

    val = imagenet_source(root, split="val")
    assert val.class_names == ("c0", "c1", "c2")  # the train synsets, in train's order
    ingest(val, tmp_path / "val", progress=False)
    labels = _labels_by_key(tmp_path / "val")
    assert [labels[f"ILSVRC2012_val_{i:08d}"] for i in range(4)] == [2, 0, 1, 2]


def test_imagenet_val_with_txt_labels_and_missing_label(tmp_path: Path) -> None:
    (tmp_path / "val").mkdir()
    for i in range(3):
        (tmp_path / "val" / f"v{i}.JPEG").write_bytes(image_bytes(i))
    (tmp_path / "val_labels.txt").write_text("v0.JPEG n02\nv1.JPEG n01\nv2.JPEG n02\n")
    source = imagenet_source(tmp_path, split="val")
    assert source.class_names == ("n01", "n02")  # no train/: the label file's synsets, sorted
    assert sorted((k, y) for k, _, y in source) == [("v0", 1), ("v1", 0), ("v2", 1)]
    (tmp_path / "val_labels.txt").write_text("v0.JPEG n02\n")
    with pytest.raises(UserError, match="2 images .* have no label"):
        imagenet_source(tmp_path, split="val")


@pytest.mark.parametrize("kind", ["csv", "csv-no-header", "jsonl"])
def test_filelist_paths_and_optional_labels(tmp_path: Path, kind: str) -> None:
    (tmp_path / "imgs").mkdir()
    rows = [("imgs/a.jpg", "dog"), ("imgs/b.jpg", "cat"), (str(tmp_path / "imgs" / "c.jpg"), None)]
    for i, (path, _) in enumerate(rows):
        (tmp_path / path).write_bytes(image_bytes(i))
    if kind == "jsonl":
        text = "\n".join(json.dumps({"path": p, **({"label": y} if y else {})}) for p, y in rows)
        listing = tmp_path / "list.jsonl"
    else:
        lines = [f"{p},{y or ''}" for p, y in rows]
        text = "\n".join((["path,label"] if kind == "csv" else []) + lines)
        listing = tmp_path / "list.csv"
    listing.write_text(text + "\n")
    source = filelist_source(listing)
    assert source.class_names == ("cat", "dog")
    ingest(source, tmp_path / "out", progress=False)
    labels = _labels_by_key(tmp_path / "out")
    assert labels["imgs_a"] == 1 and labels["imgs_b"] == 0 and sum(v == -1 for v in labels.values()) == 1


def test_filelist_integer_labels_keep_their_values(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(image_bytes(0, "PNG"))
    (tmp_path / "list.csv").write_text("x.png,7\n")
    source = filelist_source(tmp_path / "list.csv")
    assert source.class_names is None and [y for _, _, y in source] == [7]


def test_flat_folder_streams_and_writes_all(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(25):
        (flat / f"photo.{i}.jpg").write_bytes(image_bytes(i))
    (flat / "notes.txt").write_text("not an image")
    source = folder_source(flat)
    assert source.num_samples is None and source.shuffle_window is not None and source.class_names is None
    first = next(iter(source))  # the listing is a generator: nothing is read before the first sample
    assert first[1].startswith(str(flat)) and first[2] is None
    report = ingest(source, tmp_path / "out", max_samples_per_shard=10, progress=False)
    assert report.manifest is not None and report.manifest["num_samples"] == 25
    assert len(report.manifest["shards"]) == 3 and report.manifest["shuffle"]["window"] == source.shuffle_window
    samples = read_samples(tmp_path / "out")
    assert len(samples) == 25 and all(set(s) == {"jpg"} for s in samples.values())  # unlabeled: no cls


def _hf_metadata(names: list[str]) -> dict[bytes, bytes]:
    features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
    return {b"huggingface": json.dumps({"info": {"features": features}}).encode()}


@pytest.mark.parametrize("kind", ["parquet", "arrow"])
def test_hugging_face_export_passes_bytes_through(tmp_path: Path, kind: str) -> None:
    images = [image_bytes(i, "PNG" if i % 2 else "JPEG") for i in range(7)]
    table = pa.table({
        "image": pa.array([{"bytes": b, "path": f"{i}.x"} for i, b in enumerate(images)]),
        "label": pa.array([i % 3 for i in range(7)], pa.int64()),
    }).replace_schema_metadata(_hf_metadata(["a", "b", "c"]))
    export = tmp_path / "export"
    export.mkdir()
    if kind == "parquet":
        pq.write_table(table.slice(0, 4), export / "train-00000-of-00002.parquet", row_group_size=2)
        pq.write_table(table.slice(4), export / "train-00001-of-00002.parquet")
    else:  # datasets' save_to_disk: an Arrow IPC stream
        with pa.ipc.new_stream(str(export / "data-00000-of-00001.arrow"), table.schema) as writer:
            writer.write_table(table, max_chunksize=3)
    source = parquet_source(export)
    assert source.class_names == ("a", "b", "c")
    assert source.num_samples == (7 if kind == "parquet" else None)
    manifest = ingest(source, tmp_path / "out", max_samples_per_shard=3, progress=False).manifest
    assert manifest["num_samples"] == 7 and manifest["image_formats"] == {"jpg": 4, "png": 3}
    written = {s.get("jpg", s.get("png")): int(s["cls"]) for s in read_samples(tmp_path / "out").values()}
    assert written == {b: i % 3 for i, b in enumerate(images)}  # the original bytes, with their labels


def test_parquet_without_an_image_column_is_a_user_error(tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "t.parquet")
    with pytest.raises(UserError, match="no image column"):
        parquet_source(tmp_path)


def test_folder_listing_is_sorted_rglobs_order_without_a_stat_per_file(tmp_path: Path) -> None:
    """The scandir walk lists what ``sorted(Path.rglob)`` + ``is_file`` did, in that order (keys and shuffles depend on it)."""
    from sslkit.data.file_sources import IMAGE_SUFFIXES, _images_under

    root = tmp_path / "c0"
    for rel in ["b.jpg", "a-b/x.png", "a/x.jpg", "a/y/z.JPEG", "a.jpg/inner.jpg", ".hidden.jpg", "A.webp",
                "notes.txt", "a/zz.TIFF", "ab.jpeg"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "linked.jpg").write_bytes(b"x")
    (root / "dirlink").symlink_to(outside, target_is_directory=True)  # not entered (rglob's rule)
    (root / "filelink.jpg").symlink_to(outside / "linked.jpg")  # kept
    (root / "broken.jpg").symlink_to(tmp_path / "missing.jpg")  # not a file

    expected = [str(p) for p in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())]
    assert _images_under(root) == expected
    assert len(expected) == 10
