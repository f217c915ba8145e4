"""Acceptance: a really trained backbone, published, loads back in a *fresh* process with plain timm
(the model card's own code), gives the same features, and reproduces the card's kNN accuracy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from sslkit.data import build_eval_loader
from sslkit.evaluation.features import extract_features
from sslkit.evaluation.knn import knn_classify
from sslkit.evaluation.results import checkpoint_record, write_result
from sslkit.objectives import load_objective
from sslkit.publish import PublishOptions, load_pretrained, publish
from sslkit.transforms import EvalTransform
from tests.publish.conftest import MEAN, STD

# Runs in a fresh interpreter: builds the model with the card's plain-timm snippet (or timm's
# local-dir: source) *before* anything of sslkit is imported, then extracts features with timm's
# own transform from the published pretrained_cfg; sslkit.data only reads the shards afterwards.
CHILD = r"""
import re, sys
import numpy as np, timm, torch
folder, train, val, out, modes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split(",")
card = open(folder + "/README.md").read()
block = lambda tag: re.search(rf"<!-- sslkit:{tag} -->\n```python\n(.*?)```", card, re.S).group(1)
loaded = {}
for mode in modes:
    scope = {"timm": timm}
    if mode == "card":
        exec(block("load-timm"), scope)
    else:
        scope["model"] = timm.create_model("local-dir:" + folder, pretrained=True).eval()
    exec(block("preprocess"), scope)
    assert type(scope["model"]).__module__.startswith("timm."), type(scope["model"])
    loaded[mode] = scope["model"], scope["transform"]
assert not [m for m in sys.modules if m.startswith("sslkit")], "plain timm must not need sslkit"
from sslkit.data import build_eval_loader
with torch.inference_mode():
    for mode, (model, transform) in loaded.items():
        for split, shards in (("train", train), ("val", val)):
            feats, labels, keys = [], [], []
            for batch in build_eval_loader(shards, transform, 64, 0):
                feats.append(model(batch["image"])); labels.append(batch["label"]); keys += batch["key"]
            np.savez(f"{out}_{mode}_{split}.npz", feats=torch.cat(feats).numpy(), labels=torch.cat(labels).numpy(),
                     keys=np.array(keys))
"""


def splits(shards: Path) -> dict[str, str]:
    return {"train": str(shards / "digits-000000.tar"), "val": str(shards / "digits-000001.tar")}


def card_front_matter(folder: Path) -> dict[str, Any]:
    text = (folder / "README.md").read_text()
    return yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", text, re.S).group(1))


def card_knn(folder: Path) -> tuple[float, dict[str, Any]]:
    """The kNN top-1 the card's front matter records, and its settings."""
    for result in card_front_matter(folder)["model-index"][0]["results"]:
        metric = result["metrics"][0]
        if metric["name"].startswith("kNN"):
            return metric["value"], metric["args"]
    raise AssertionError("no kNN result in the card")


def fresh_process_features(
    folder: Path, shards: Path, tmp_path: Path, modes: tuple[str, ...]
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{mode: {split: {feats, labels, keys}}}`` computed by :data:`CHILD` in a fresh interpreter."""
    out = tmp_path / "feats"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    s = splits(shards)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder), s["train"], s["val"], str(out), ",".join(modes)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=folder.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]  # the card's paths are relative: run beside the folder
    return {m: {split: dict(np.load(f"{out}_{m}_{split}.npz")) for split in ("train", "val")} for m in modes}


def trained_features(run_dir: Path, shards: Path) -> dict[str, Any]:
    """Features of the checkpoint's evaluation backbone (sslkit's modules, not plain timm)."""
    backbone = load_objective(run_dir / "checkpoints" / "last.ckpt").eval_backbone()
    transform = EvalTransform(32, mean=MEAN, std=STD)
    return {split: extract_features(backbone, build_eval_loader(path, transform, 64, 0))
            for split, path in splits(shards).items()}


def assert_roundtrip(folder: Path, run_dir: Path, shards: Path, tmp_path: Path, modes: tuple[str, ...]) -> None:
    ours = trained_features(run_dir, shards)
    accuracy, args = card_knn(folder)
    for mode, theirs in fresh_process_features(folder, shards, tmp_path, modes).items():
        for split in ("train", "val"):
            assert list(theirs[split]["keys"]) == ours[split].keys
            diff = np.abs(theirs[split]["feats"] - ours[split].feats).max()
            assert diff <= 1e-5, f"{mode} {split}: max abs diff {diff}"
        numbers = knn_classify(theirs["train"]["feats"], theirs["train"]["labels"], theirs["val"]["feats"],
                               theirs["val"]["labels"], [args["k"]], [args["temperature"]])
        assert round(numbers[args["key"]], 4) == accuracy, (mode, numbers, accuracy)


@pytest.mark.parametrize("kind", ["dino_vit", "ijepa_vit"])
def test_vit_teacher_roundtrip_through_plain_timm(kind, trained_run, publish_shards, tmp_path) -> None:
    if kind == "ijepa_vit":
        pytest.importorskip("sslkit.objectives.ijepa")
    run_dir = trained_run(kind)
    s = splits(publish_shards)
    folder = publish(run_dir, tmp_path / "published", PublishOptions(train_shards=s["train"], val_shards=s["val"]))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md", "SHA256SUMS", "config.json", "eval/knn.json", "eval/knn.md", "model.safetensors",
        "training_config.yaml"]
    assert (folder / "training_config.yaml").read_text() == (run_dir / "config.yaml").read_text()
    fm = card_front_matter(folder)
    assert fm["library_name"] == "timm" and fm["license"] == "apache-2.0" and fm["datasets"] == ["digits"]
    card = (folder / "README.md").read_text()
    assert "| knn | kNN top-1 (k=20, T=0.07) |" in card
    assert "- optimizer steps: 2" in card and "- last logged train/loss (metrics.csv): 1.0" in card
    assert_roundtrip(folder, run_dir, publish_shards, tmp_path, modes=("card", "local-dir"))


def test_resnet18_standard_stem_roundtrip_with_the_runs_eval_result(trained_run, publish_shards, tmp_path) -> None:
    """SimCLR, timm's standard ``resnet18`` stem: the card's number is the run's own kNN result JSON."""
    run_dir = Path(shutil.copytree(trained_run("simclr_resnet18"), tmp_path / "run"))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    feats = trained_features(run_dir, publish_shards)
    numbers = knn_classify(feats["train"].feats, feats["train"].labels, feats["val"].feats, feats["val"].labels)
    pre = {"transform": "sslkit.transforms.views.EvalTransform", "input_size": 32, "resize": None,
           "mean": MEAN, "std": STD}
    write_result(run_dir / "eval" / "knn.json", "knn", numbers, checkpoint=checkpoint_record(ckpt),
                 features={"train": {"preprocessing": pre}, "val": {"preprocessing": pre}})

    folder = publish(run_dir, tmp_path / "published")
    card = (folder / "README.md").read_text()
    assert "this checkpoint's evaluation backbone (= these weights)" in card
    assert (folder / "eval" / "00_knn.json").is_file()
    assert card_knn(folder)[0] == round(numbers["k20_t0.07_top1"], 4)
    assert_roundtrip(folder, run_dir, publish_shards, tmp_path, modes=("card", "local-dir"))


def test_resnet18_cifar_stem_roundtrip_with_the_cards_stem_swap(trained_run, publish_shards, tmp_path) -> None:
    """timm has no CIFAR stem: the card's snippet builds timm ``resnet18`` and swaps conv1/maxpool."""
    run_dir = trained_run("simclr_resnet18_cifar")
    s = splits(publish_shards)
    folder = publish(run_dir, tmp_path / "published", PublishOptions(train_shards=s["train"], val_shards=s["val"]))
    config = __import__("json").loads((folder / "config.json").read_text())
    assert config["architecture"] == "resnet18" and config["sslkit"]["stem"] == "cifar"
    assert "CIFAR stem" in (folder / "README.md").read_text()
    assert_roundtrip(folder, run_dir, publish_shards, tmp_path, modes=("card",))
    # sslkit.load_pretrained applies the stem itself
    model = load_pretrained(folder)
    x = torch.randn(2, 3, 32, 32)
    backbone = load_objective(run_dir / "checkpoints" / "last.ckpt").eval_backbone().eval()
    torch.testing.assert_close(model(x), backbone(x), atol=1e-5, rtol=0)
