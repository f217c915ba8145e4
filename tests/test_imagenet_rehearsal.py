"""Rehearsal of every ImageNet-1k recipe: 2 optimizer steps on CPU at its real resolutions and crops.

Only the network is shrunk (backbone depth/width; projector, predictor and decoder widths; patch size
and input size kept); transforms, device augmentation, collators and masks run exactly as the recipe states, on
generated 256-px JPEG shards written by ``sslkit.data.writer``. What each step received is recorded
and checked against the recipe's resolutions (224/96 px crops, 14/16-px patch grids).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from sslkit.config import deep_merge, load_recipe
from sslkit.data import ImageSource, write_shards
from sslkit.training import build_cli

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
IMAGENET_RECIPES = sorted(p for p in RECIPES.rglob("*_imagenet1k.yaml") if "_base" not in p.parts)
SHARD_SIDE = 256

VIT_SHRINK = {"depth": 1, "embed_dim": 64, "num_heads": 2}  # patch size and img_size stay the recipe's
RESNET_SHRINK = {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64]}  # bottleneck ResNet-50 -> 256 features
HEAD_SHRINK = {  # the parts sized after the backbone (an 8192-wide projector alone costs minutes on CPU)
    "SimCLR": {"proj_hidden_dim": 64},
    "BYOL": {"proj_hidden_dim": 64},
    "BarlowTwins": {"proj_hidden_dim": 64, "proj_output_dim": 64},
    "VICReg": {"proj_hidden_dim": 64, "proj_output_dim": 64},
    "MoCoV3": {"proj_hidden_dim": 64},
    "DINO": {"proj_hidden_dim": 64, "proj_bottleneck_dim": 32},  # the 65536 prototypes stay
    "DINOv2": {"proj_hidden_dim": 64, "proj_bottleneck_dim": 32},
    "SwAV": {"proj_hidden_dim": 64},
    "LeJEPA": {"proj_hidden_dim": 64},
    "IJEPA": {"predictor_embed_dim": 64, "predictor_depth": 1, "predictor_num_heads": 2},
    "MAE": {"decoder_embed_dim": 64, "decoder_depth": 1, "decoder_num_heads": 2},
}


@pytest.fixture(scope="module")
def jpeg_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight 256 x 256 JPEG samples (smooth colour fields + noise) in two shards."""
    out = tmp_path_factory.mktemp("imagenet_like")
    rng = np.random.default_rng(0)

    def samples() -> Iterator[tuple[str, Image.Image, int]]:
        for i in range(8):
            low = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).resize((SHARD_SIDE, SHARD_SIDE))
            noisy = np.asarray(low).astype(np.int16) + rng.integers(-20, 20, (SHARD_SIDE, SHARD_SIDE, 3))
            yield f"{i:04d}", Image.fromarray(noisy.clip(0, 255).astype(np.uint8)), i % 4

    write_shards(ImageSource("synthetic:train", None, 8, samples), out, image_format="jpg", quality=90,
                 max_samples_per_shard=4, progress=False)
    return out


def shrunk(recipe: dict[str, Any], shards: Path) -> dict[str, Any]:
    """The recipe with a tiny network and the test shards; everything else untouched."""
    args = recipe["model"]["init_args"]
    objective = recipe["model"]["class_path"].rsplit(".", 1)[-1]
    backbone_shrink = RESNET_SHRINK if args["backbone"].startswith("resnet") else VIT_SHRINK
    return deep_merge(recipe, {
        "model": {"init_args": {"backbone_kwargs": backbone_shrink, **HEAD_SHRINK.get(objective, {})}},
        "data": {"init_args": {"train_shards": str(shards), "val_shards": None, "batch_size_per_device": 2,
                               "num_workers": 0}},
    })


def expected_sizes(recipe: dict[str, Any]) -> list[int]:
    """View side lengths the recipe asks for, read from its transform or device-augmentation layer."""
    transform = recipe["data"]["init_args"]["train_transform"]
    args = transform.get("init_args", {})
    if transform["class_path"].endswith("MultiCropViews"):
        return [args["global_crop_size"]] * 2 + [args["local_crop_size"]] * args["num_local_views"]
    if transform["class_path"].endswith("UInt8Image"):
        (device_aug,) = recipe["trainer"]["callbacks"]
        views = device_aug["init_args"]["views"]
        views = views if isinstance(views, list) else [views]  # multi-crop: global then local BatchViews
        return [v["init_args"]["input_size"] for v in views for _ in range(v["init_args"]["num_views"])]
    return [args["input_size"]]


def check_masks(batch: dict[str, Any], recipe: dict[str, Any]) -> None:
    collate = recipe["data"]["init_args"].get("collate_fn")
    if collate is None:
        return
    args = collate["init_args"]
    num_patches = (args["input_size"] // args["patch_size"]) ** 2  # 196 at 224/16, 256 at 224/14
    if collate["class_path"].endswith("IBOTMaskCollator"):  # iBOT/DINOv2: one mask row per global crop
        masks = batch["masks_ibot"]
        assert masks.shape == (2 * 2, num_patches) and masks.dtype == torch.bool
        masked = masks.sum(dim=1)
        assert masked.max() <= args["mask_ratio"][1] * num_patches and (masked == 0).any()
        return
    target = batch["masks_target"]
    assert 0 <= int(target.min()) and int(target.max()) < num_patches
    if "mask_ratio" in args and "masks_context" in batch:  # MAE: visible + masked = every patch, once
        both = torch.cat([batch["masks_context"], target], dim=1)
        assert (both.sort(dim=1).values == torch.arange(num_patches)).all()
    elif "mask_ratio" in args:  # SimMIM: whole mask squares, ~mask_ratio of the patches
        assert abs(target.shape[1] / num_patches - args["mask_ratio"]) < 0.1
    else:  # I-JEPA: a context block plus num_targets target blocks on the recipe's grid
        assert target.shape[:2] == (2, args["num_targets"]) and int(batch["masks_context"].max()) < num_patches


@pytest.mark.slow
@pytest.mark.parametrize("path", IMAGENET_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_imagenet_recipe_rehearsal(path: Path, jpeg_shards: Path, tmp_path: Path) -> None:
    recipe = shrunk(load_recipe(path), jpeg_shards)
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    cli = build_cli(["--config", str(config), "--trainer.accelerator=cpu", "--trainer.devices=1",
                     "--trainer.num_nodes=1", "--trainer.max_steps=2", "--trainer.logger=false"], tmp_path / "run")
    seen: list[dict[str, Any]] = []
    losses: list[float] = []
    step = cli.model.training_step

    def recording_step(batch: dict[str, Any], batch_idx: int) -> Any:
        seen.append(batch)
        loss = step(batch, batch_idx)
        losses.append(float(loss.detach().float()))
        return loss

    cli.model.training_step = recording_step  # what training_step receives, after any device augmentation
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)

    assert cli.trainer.global_step == 2 and len(losses) == 2
    assert all(np.isfinite(losses)), losses
    for batch in seen:
        views = batch["views"]
        assert [v.shape[-1] for v in views] == expected_sizes(recipe)
        assert all(v.dtype.is_floating_point and v.shape[:2] == (2, 3) for v in views)
        check_masks(batch, recipe)


def test_every_method_has_an_imagenet_recipe() -> None:
    names = {p.relative_to(RECIPES).parts[0] for p in IMAGENET_RECIPES}
    assert {"simclr", "byol", "barlowtwins", "vicreg", "mocov3", "dino", "mae", "simmim", "ijepa",
            "swav", "ibot", "dinov2", "lejepa"} <= names
    for path in IMAGENET_RECIPES:
        assert path.read_text().startswith("# "), f"{path}: a recipe starts with its paper"
        assert "Reproduces" in path.read_text(), f"{path}: name the table it reproduces"
