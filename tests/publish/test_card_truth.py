"""The model card says only what is true, and ``eval`` computes the same features as the published model.

A run's folder may hold results of other checkpoints (training went on after an eval) or of another
dataset; results may also live outside the run (``eval --out``). Only those measured on this very
checkpoint are reported, each with the dataset of its own queries; budget and training data come from
the run record (trainer state, shards' manifest).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import timm
import torch
import yaml

from sslkit.cli import main as sslkit_main
from sslkit.evaluation.feature_store import load_features
from sslkit.evaluation.results import checkpoint_record, write_result
from sslkit.objectives.simclr import SimCLR
from sslkit.publish import load_pretrained, publish
from tests.publish.test_roundtrip import splits

KNN_ROW = {"k20_t0.07_top1": 50.0, "k20_t0.07_top5": 90.0}


def front_matter(folder: Path) -> dict:
    return yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", (folder / "README.md").read_text(), re.S).group(1))


def _result(path: Path, ckpt: dict, dataset: str, top1: float) -> Path:
    features = {"val": {"dataset": dataset, "shards": "elsewhere"}, "train": {"dataset": dataset}}
    write_result(path, "knn", {**KNN_ROW, "k20_t0.07_top1": top1}, checkpoint=ckpt, features=features)
    return path


def test_stale_and_foreign_results_are_not_reported(trained_run, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run("simclr_resnet18"), run)
    ckpt = run / "checkpoints" / "last.ckpt"
    stale = {**checkpoint_record(ckpt), "sha256": "0" * 64}  # an earlier last.ckpt of the same run
    _result(run / "eval" / "old" / "knn.json", stale, "digits", 34.17)
    card = (publish(run, tmp_path / "stale") / "README.md").read_text()
    assert "34.17" not in card and "model-index" not in card and "Not evaluated" in card
    assert "eval/" not in card.split("## Files", 1)[1]  # no eval/ folder listed that is not there

    # A result of this checkpoint written outside the run (eval --out): registered, found, labelled by its data.
    outside = tmp_path / "elsewhere" / "knn.json"
    assert sslkit_main(["eval", "knn", "--features", str(tmp_path / "none")]) == 2  # (no features: user error)
    from sslkit.evaluation.results import register_result

    _result(outside, checkpoint_record(ckpt), "mnist", 61.5)
    register_result(outside, checkpoint_record(ckpt))
    folder = publish(run, tmp_path / "fresh")
    (entry,) = front_matter(folder)["model-index"][0]["results"]
    assert entry["dataset"]["name"] == "mnist" and entry["metrics"][0]["value"] == 61.5
    assert (folder / "eval" / "00_knn.json").is_file()


def test_budget_and_dataset_come_from_the_run(trained_run, tmp_path: Path) -> None:
    folder = publish(trained_run("simclr_resnet18"), tmp_path / "out")
    card = (folder / "README.md").read_text()
    # 64 digits, batch 8: 8 steps per epoch; the fixture stopped after 2 steps, in epoch 0.
    assert "- epochs completed: 0.25 (2 of 8 steps per epoch)" in card
    assert "- devices: 1 (1 node(s))" in card and "- global batch size: 8" in card
    assert card.split("## Training data", 1)[1].split("##", 1)[0].strip() == "digits"
    assert front_matter(folder)["datasets"] == ["digits"]
    assert "mean [0.4914, 0.4822, 0.4465]" in card and "(from: input_size: run record" in card
    assert str(tmp_path) not in card  # relative paths only
    assert f"**SimCLR** ({SimCLR.paper})" in card and "arXiv:2002.05709" in card  # the class names its paper
    files = card.split("## Files", 1)[1].split("##", 1)[0]
    for name in re.findall(r"`([^`]+)` \(", files):
        assert (folder / name).is_file(), name


def test_eval_features_equal_published_features(trained_run, publish_shards: Path, tmp_path: Path) -> None:
    """`eval extract` without any size or normalisation flag == the published model with timm's transform."""
    run = trained_run("simclr_resnet18")
    s = splits(publish_shards)
    features = tmp_path / "features"
    assert sslkit_main(["eval", "extract", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--train-shards",
                        s["train"], "--val-shards", s["val"], "--features", str(features), "--num-workers", "0",
                        "--no-progress", "--device", "cpu"]) == 0
    folder = publish(run, tmp_path / "published")
    cfg = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    transform = timm.data.create_transform(**timm.data.resolve_data_config(pretrained_cfg=cfg))
    model = load_pretrained(folder).eval()
    from sslkit.data import build_eval_loader

    val = load_features(features / "val")
    loader = build_eval_loader(s["val"], transform, batch_size=64, num_workers=0)
    with torch.no_grad():
        published = {k: f for b in loader for k, f in zip(b["key"], model(b["image"]).numpy())}
    ours = np.stack([published[k] for k in val.keys])
    assert np.abs(ours - np.asarray(val.feats)).max() < 1e-5
