"""Collapse/quality guard: one representative of each family must beat its own random init.

A tiny ViT trains for a few dozen steps on scikit-learn's digits (16 px, always available), and
weighted kNN top-1 (k=20, T=0.07) on the held-out digits is compared with that very backbone before
training (a deepcopy of ``eval_backbone()``, evaluated with the same pooling). A collapsed objective
(constant or low-rank features, a teacher that never moves, a loss that no longer reaches the
backbone) stays at or below random init and fails here.

Families: contrastive (SimCLR), variance-covariance regularised (VICReg), equivariant contrastive
(CARE), masked pixel reconstruction (MAE) and joint-embedding prediction (I-JEPA). Pooling as in
``bench/objectives.py``: the ViT has no class token and every family uses the mean of the patch
tokens (one pooling for all, so every family has the same kind of random-init baseline).

Margins (top-1 points): gains measured with seeds 0, 1, 2 (``docs/benchmarks.md``, Objectives) were
SimCLR +15.3/+10.3/+13.6, VICReg +8.3/+5.6/+6.7, CARE +16.9/+10.8/+11.4, MAE +13.1/+9.7/+8.6, I-JEPA
+7.8/+6.7/+3.1. Each margin is about half the smallest gain of its family: 3-5 points (more than one
standard error of top-1 on 360 queries at ~30 %, 2.4 points), 2 for I-JEPA, the slowest starter. The
test uses seed 0 (gains +15.3/+8.3/+16.9/+13.1/+7.8: every one at least twice its margin), so a run
that only matches random init fails while a healthy one passes with room to spare.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pytest
import torch

from sslkit.data import ShardDataModule, build_eval_loader, open_source, write_shards
from sslkit.evaluation.features import Pooling, extract_features
from sslkit.evaluation.knn import knn_classify
from sslkit.masking import MultiBlockMaskCollator, RandomMaskCollator
from sslkit.objectives import CARE, IJEPA, MAE, SimCLR, SSLObjective, VICReg
from sslkit.transforms import EvalTransform, MaskedImageViews, SharedAugmentCollator, SimCLRViews, WithOriginal

pytestmark = pytest.mark.slow

SIZE = 16  # digits are 8x8: 16 px with 4-px patches is a 4x4 grid, each patch 2x2 original pixels
MEAN = STD = (0.5, 0.5, 0.5)
BACKBONE = "vit_tiny_patch16_224"
# No class token, average pooling (the I-JEPA recipe's ViT): every family trains and is evaluated on the
# mean of the patch tokens, the features a short run improves first.
TINY_VIT = {"img_size": SIZE, "patch_size": 4, "depth": 2, "embed_dim": 64, "num_heads": 4, "class_token": False,
            "global_pool": "avg"}
OPTIM = {"lr": 2e-3, "min_lr": 2e-5, "weight_decay": 0.05, "warmup_epochs": 0.1}  # one "epoch" = the whole run
BATCH_SIZE = 64
SEED = 0


def _views() -> SimCLRViews:
    """Digit views (as in ``sslkit quickstart``): crops, small rotations, contrast; no flips or hue."""
    return SimCLRViews(input_size=SIZE, min_scale=0.3, cj_strength=0.5, gray_prob=0.0, blur_prob=0.0,
                       hflip_prob=0.0, rotation_degrees=10, mean=MEAN, std=STD)


def _masked_views() -> MaskedImageViews:
    return MaskedImageViews(input_size=SIZE, augment=True, min_scale=0.5, hflip_prob=0.0, mean=MEAN, std=STD)


@dataclass(frozen=True)
class Family:
    """How to build one representative, how long to train it, how much it must gain (top-1 points)."""

    build: Callable[[], tuple[SSLObjective, Callable, Callable | None]]
    steps: int
    margin: float


FAMILIES: dict[str, Family] = {
    "SimCLR": Family(lambda: (SimCLR(backbone=BACKBONE, backbone_kwargs=TINY_VIT, proj_hidden_dim=256,
                                     proj_output_dim=64, temperature=0.2, gather_distributed=False, **OPTIM),
                              _views(), None), steps=30, margin=5.0),
    "VICReg": Family(lambda: (VICReg(backbone=BACKBONE, backbone_kwargs=TINY_VIT, proj_hidden_dim=256,
                                     proj_output_dim=256, gather_distributed=False, **OPTIM),
                              _views(), None), steps=30, margin=3.0),
    "CARE": Family(lambda: (CARE(backbone=BACKBONE, backbone_kwargs=TINY_VIT, proj_hidden_dim=256, proj_output_dim=64,
                                 temperature=0.2, equivariance_weight=0.03, gather_distributed=False, **OPTIM),
                            WithOriginal(_views()),
                            SharedAugmentCollator(group_size=8, input_size=SIZE, hflip_prob=0.0, gray_prob=0.0,
                                                  blur_prob=0.0, mean=MEAN, std=STD)), steps=30, margin=5.0),
    "MAE": Family(lambda: (MAE(backbone=BACKBONE, backbone_kwargs=TINY_VIT, decoder_embed_dim=64, decoder_depth=1,
                               decoder_num_heads=4, **OPTIM),
                           _masked_views(), RandomMaskCollator(input_size=SIZE, patch_size=4, mask_ratio=0.75)),
                  steps=30, margin=4.0),
    # I-JEPA learns more slowly at the start (its targets are the teacher's own moving features).
    "IJEPA": Family(lambda: (IJEPA(backbone=BACKBONE, backbone_kwargs=TINY_VIT, predictor_embed_dim=32,
                                   predictor_depth=1, predictor_num_heads=4, ema_momentum=0.97, ema_momentum_end=0.995,
                                   **OPTIM),
                             _masked_views(), MultiBlockMaskCollator(input_size=SIZE, patch_size=4, num_targets=4,
                                                                     min_keep=4)), steps=80, margin=2.0),
}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """All 1,797 digits at 16 px: the stratified 80/20 train/test split as shards."""
    out = tmp_path_factory.mktemp("guard_digits")
    for split in ("train", "test"):
        write_shards(open_source("digits", split=split, size=SIZE), out / split, prefix=f"digits-{split}",
                     max_samples_per_shard=512, progress=False)
    return {split: out / split for split in ("train", "test")}


def knn_top1(backbone: torch.nn.Module, shards: dict[str, Path]) -> float:
    """Weighted kNN top-1 (k=20, T=0.07): bank = train digits, queries = held-out digits."""
    transform = EvalTransform(SIZE, mean=MEAN, std=STD)
    feats = {split: extract_features(backbone, build_eval_loader(str(path), transform, 512, 0), Pooling("pooled"))
             for split, path in shards.items()}
    result = knn_classify(feats["train"].feats, feats["train"].labels, feats["test"].feats, feats["test"].labels,
                          ks=(20,), temps=(0.07,))
    return float(result["k20_t0.07_top1"])


def random_init_and_pretrained(name: str, shards: dict[str, Path], root: Path, seed: int = SEED) -> tuple[float, float]:
    """kNN top-1 of the family's backbone before and after its short CPU fit."""
    family = FAMILIES[name]
    L.seed_everything(seed, verbose=False)
    model, transform, collate_fn = family.build()
    before = knn_top1(copy.deepcopy(model.eval_backbone()), shards)
    dm = ShardDataModule(str(shards["train"]), batch_size_per_device=BATCH_SIZE, num_workers=0,
                         train_transform=transform, collate_fn=collate_fn, shuffle_buffer=256, seed=seed,
                         persistent_workers=False, pin_memory=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=family.steps, max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=root, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    return before, knn_top1(model.eval_backbone(), shards)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_beats_random_init(name: str, digits: dict[str, Path], tmp_path: Path) -> None:
    before, after = random_init_and_pretrained(name, digits, tmp_path)
    margin = FAMILIES[name].margin
    assert after > before + margin, (
        f"{name} collapsed or stopped learning: kNN top-1 {after:.1f}% after {FAMILIES[name].steps} steps vs "
        f"{before:.1f}% at random init (needs > +{margin:.0f} points)"
    )
