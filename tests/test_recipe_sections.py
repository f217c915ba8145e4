"""Recipe-level ``stats:`` and ``image:`` sections: one source for normalisation and image/patch sizes."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

import sslkit.masking
import sslkit.transforms
from sslkit.cli import main
from sslkit.config import load_recipe, load_recipes
from sslkit.errors import UserError
from sslkit.presets import MASK_COLLATORS, NORMALISING_TRANSFORMS, STATS

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CIFAR_MEAN, CIFAR_STD = (list(v) for v in STATS["cifar10"])


def _classes_taking(module: object, *params: str) -> set[str]:
    found = set()
    for name in getattr(module, "__all__"):
        obj = getattr(module, name)
        if inspect.isclass(obj) and set(params) <= set(inspect.signature(obj).parameters):
            found.add(name)
    return found


def test_the_section_targets_are_exactly_the_classes_taking_those_arguments() -> None:
    assert _classes_taking(sslkit.transforms, "mean", "std") == NORMALISING_TRANSFORMS
    assert _classes_taking(sslkit.masking, "input_size", "patch_size") == MASK_COLLATORS


def _write(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def _views(**init_args: object) -> dict:
    return {"class_path": "sslkit.transforms.SimCLRViews", "init_args": {"input_size": 32, **init_args}}


def test_stats_fill_every_normalising_transform_and_leave_others_alone(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.yaml", {"stats": "cifar10", "data": {"init_args": {
        "eval_transform": {"class_path": "sslkit.transforms.EvalTransform", "init_args": {"input_size": 32}}}}})
    recipe = _write(tmp_path / "r.yaml", {"_base_": "base.yaml", "data": {"init_args": {
        "train_transform": {"class_path": "sslkit.transforms.WithRotationView",
                            "init_args": {"transform": _views(mean=CIFAR_MEAN)}}}},  # an equal value is fine
        "trainer": {"callbacks": [{"class_path": "sslkit.callbacks.device_aug.DeviceAugmentation", "init_args": {
            "views": [{"class_path": "sslkit.transforms.gpu.BatchViews"}]}}]}})
    out = load_recipe(recipe)
    assert "stats" not in out  # LightningCLI never sees the section
    data = out["data"]["init_args"]
    assert data["eval_transform"]["init_args"] == {"input_size": 32, "mean": CIFAR_MEAN, "std": CIFAR_STD}
    assert data["train_transform"]["init_args"]["transform"]["init_args"]["std"] == CIFAR_STD
    assert "mean" not in data["train_transform"]["init_args"]  # the wrapper takes no mean
    views = out["trainer"]["callbacks"][0]["init_args"]["views"][0]["init_args"]
    assert views == {"mean": CIFAR_MEAN, "std": CIFAR_STD}


def test_a_later_layer_changes_the_preset_for_every_transform(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.yaml", {"stats": "cifar10", "data": {"init_args": {"train_transform": _views()}}})
    layer = _write(tmp_path / "layer.yaml", {"stats": "imagenet"})
    out = load_recipes([base, layer])
    assert out["data"]["init_args"]["train_transform"]["init_args"]["mean"] == list(STATS["imagenet"][0])


@pytest.mark.parametrize(("recipe", "words"), [
    ({"stats": "cifar100"}, ["'cifar100' is not a preset", "cifar10, digits, imagenet, mnist"]),
    ({"stats": "cifar10", "data": {"train_transform": _views(mean=[0.5, 0.5, 0.5])}},
     ["data.train_transform.init_args.mean is [0.5, 0.5, 0.5] but stats: cifar10 gives", "drop mean"]),
    ({"image": {"size": 32, "patch": 4}}, ["must be a mapping {size: <px>, patch_size: <px>}"]),
    ({"image": {"size": 32, "patch_size": 4}, "model": {"init_args": {"backbone_kwargs": {"patch_size": 8}}}},
     ["model.init_args.backbone_kwargs.patch_size is 8 but image gives 4"]),
])
def test_bad_or_disagreeing_sections_are_one_line_user_errors(tmp_path: Path, recipe: dict, words: list[str]) -> None:
    with pytest.raises(UserError) as exc:
        load_recipe(_write(tmp_path / "r.yaml", recipe))
    assert "\n" not in str(exc.value) and all(w in str(exc.value) for w in words), str(exc.value)


def test_pretrain_refuses_a_bad_preset_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _write(tmp_path / "r.yaml", {"_base_": str(RECIPES / "simclr" / "vit_tiny_cifar10.yaml"),
                                          "stats": "cifar"})
    assert main(["pretrain", "-c", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'cifar' is not a preset" in err


def test_image_sizes_reach_backbone_and_collator_from_one_place() -> None:
    out = load_recipe(RECIPES / "mae" / "vit_tiny_cifar10.yaml")
    kwargs = out["model"]["init_args"]["backbone_kwargs"]
    collator = out["data"]["init_args"]["collate_fn"]["init_args"]
    assert (kwargs["img_size"], kwargs["patch_size"]) == (collator["input_size"], collator["patch_size"]) == (32, 4)
    assert kwargs["sincos_pos_embed"] is True  # the recipe's other backbone arguments stay


def _lists(node: object) -> list[list]:
    if isinstance(node, dict):
        return [found for child in node.values() for found in _lists(child)]
    if isinstance(node, list):
        return [node, *(found for child in node for found in _lists(child))]
    return []


def _numbers(values: list) -> tuple[float, ...] | None:
    return tuple(values) if all(isinstance(v, (int, float)) for v in values) else None


def test_no_recipe_file_copies_a_preset_or_restates_a_masked_size() -> None:
    presets = {tuple(values) for pair in STATS.values() for values in pair}
    for path in RECIPES.rglob("*.yaml"):
        raw = yaml.safe_load(path.read_text()) or {}
        assert not [v for v in _lists(raw) if _numbers(v) in presets], f"{path} copies a preset; write stats: <name>"
        if "image" in raw:
            kwargs = ((raw.get("model") or {}).get("init_args") or {}).get("backbone_kwargs") or {}
            assert not {"img_size", "patch_size"} & set(kwargs), path
