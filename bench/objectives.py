"""Every objective for the same small CPU budget on a CIFAR-10 subset: kNN top-1 vs random init, img/s.

    python bench/objectives.py [--steps 500] [--batch-size 64] [--methods SimCLR MAE ...] [--plot docs/x.png]

Each objective trains the same ViT (ViT-Tiny width 192, ``--patch-size`` 8 px at 32 px, ``--depth``
blocks, no class token, average pooling, fixed 2-D sin-cos positions unless ``--pos-embed learn``)
from the same initial weights (``seed_everything`` before each build; the weights' hash is recorded) for ``--steps`` optimizer steps at ``--batch-size`` on the
first ``--train-shards`` CIFAR-10 train shards. Random init is that very backbone before training (a
deepcopy of ``objective.eval_backbone()``: the EMA teacher where there is one). kNN protocol: bank =
the first ``--bank-shards`` train shards, queries = the first ``--query-shards`` test shards (1,000
images a shard), weighted kNN with (k=20, T=0.07) and (k=200, T=0.1) on L2-normalised features.

Pooling: the mean of the patch tokens for every method (the ViT has no class token). That is the
standard for I-JEPA (average-pooled target-encoder tokens) and a standard choice for MAE/SimMIM, and
it gives every method the same random-init baseline.

Hyperparameters are the short-run ones in ``build_*`` below, not the long-run recipes: a run of a few
minutes needs a higher learning rate, a short warmup, EMA teachers that follow the student within the
run and smaller heads. Shards are read from ``--shards`` (written from ``../shared/data/cifar10`` when
missing; never inside the repository). Writes ``<out>/result.json`` and a bar chart (``--plot``).
Exits 1 if any objective fails to beat its random init on either kNN setting (a collapse: a bug).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from common import machine  # noqa: I001  (bench/ is on sys.path)
from sslkit.data import ShardDataModule, build_eval_loader, open_source, write_shards
from sslkit.evaluation.features import Pooling, extract_features
from sslkit.evaluation.knn import knn_classify, knn_key
from sslkit.evaluation.rankme import rankme
from sslkit.masking import IBOTMaskCollator, MultiBlockMaskCollator, RandomMaskCollator, SimMIMMaskCollator
from sslkit.objectives import (
    BYOL, CARE, DINO, IJEPA, MAE, MSN, NNCLR, BarlowTwins, DINOv2, LeJEPA, MoCoV3, SimCLR, SimMIM, SimSiam,
    SSLObjective, SwAV, TiCo, VICReg,
)
from sslkit.transforms import (
    BYOLViews, EvalTransform, MaskedImageViews, MultiCropViews, SharedAugmentCollator, SimCLRViews, WithOriginal,
    WithRotationView,
)

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
BACKBONE = "vit_tiny_patch16_224"
KNN = ((20, 0.07), (200, 0.1))


@dataclass(frozen=True)
class Setup:
    """What every objective shares: image and patch size, ViT depth, schedule shape."""

    image_size: int = 32
    patch_size: int = 8
    depth: int = 2
    warmup_epochs: float = 0.1  # the run is one "epoch" per pass over the subset; see ``run_epochs``
    run_epochs: int = 1         # passes over the training subset (max_epochs), for epoch-based settings
    # Short-run EMA, cosine-increased: a teacher at 0.996 would barely leave its initialisation in ~100 steps.
    ema_start: float = 0.97
    ema_end: float = 0.995
    sincos_pos_embed: bool = True  # fixed 2-D sin-cos (MAE, I-JEPA, MoCo v3 authors; lightly's masked ViT)

    def backbone_kwargs(self, **extra: Any) -> dict[str, Any]:
        # No class token, global average pooling (as the I-JEPA recipe): every objective trains and is
        # evaluated on the mean of the patch tokens, so one pooling serves all and random init is one row.
        return {"img_size": self.image_size, "patch_size": self.patch_size, "depth": self.depth,
                "class_token": False, "global_pool": "avg", "sincos_pos_embed": self.sincos_pos_embed, **extra}

    def optim(self, lr: float = 1e-3, **extra: Any) -> dict[str, Any]:
        """AdamW, warmup over the first 10% of steps, cosine to ``lr / 100``; wd 0.05 unless given."""
        return {"optimizer": "adamw", "lr": lr, "min_lr": lr / 100, "weight_decay": 0.05,
                "warmup_epochs": self.warmup_epochs * self.run_epochs, **extra}


@dataclass
class Built:
    """An objective with its train transform, collator and evaluation pooling."""

    objective: SSLObjective
    transform: Callable
    collate_fn: Callable | None = None
    pooling: str = "pooled"
    notes: str = ""


def _two_views(s: Setup) -> SimCLRViews:
    return SimCLRViews(input_size=s.image_size, min_scale=0.2, cj_strength=0.5, blur_prob=0.0, mean=MEAN, std=STD)


def _byol_views(s: Setup) -> BYOLViews:
    return BYOLViews(input_size=s.image_size, min_scale=0.08, cj_strength=0.5, blur_probs=(0.0, 0.0), mean=MEAN,
                     std=STD)


def _masked_views(s: Setup, min_scale: float, hflip_prob: float) -> MaskedImageViews:
    return MaskedImageViews(input_size=s.image_size, augment=True, min_scale=min_scale, hflip_prob=hflip_prob,
                            mean=MEAN, std=STD)


def build_simclr(s: Setup) -> Built:
    model = SimCLR(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), proj_hidden_dim=1024, proj_output_dim=128,
                   temperature=0.2, gather_distributed=False, **s.optim())
    return Built(model, _two_views(s))


def build_essl(s: Setup) -> Built:
    rotation = {"class_path": "sslkit.objectives.rotation.FourFoldRotation", "init_args": {"hidden_dim": 1024}}
    model = SimCLR(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(dynamic_img_size=True), proj_hidden_dim=1024,
                   proj_output_dim=128, temperature=0.2, gather_distributed=False, aux_loss=rotation, aux_weight=0.4,
                   **s.optim())
    half = s.image_size // 2
    rot = SimCLRViews(input_size=half, num_views=1, min_scale=0.2, cj_strength=0.5, blur_prob=0.0, mean=MEAN, std=STD)
    return Built(model, WithRotationView(_two_views(s), rot), notes=f"SimCLR + 0.4 x rotation of a {half}-px crop")


def build_mocov3(s: Setup) -> Built:
    model = MoCoV3(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), proj_hidden_dim=1024, proj_output_dim=256,
                   temperature=0.2, ema_momentum=s.ema_start, ema_momentum_end=s.ema_end, gather_distributed=False,
                   **s.optim(weight_decay=0.1))
    return Built(model, _byol_views(s))


def build_tico(s: Setup) -> Built:
    model = TiCo(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), proj_hidden_dim=1024, proj_output_dim=256,
                 ema_momentum=s.ema_start, ema_momentum_end=s.ema_end, gather_distributed=False, **s.optim())
    return Built(model, _byol_views(s))


def build_byol(s: Setup) -> Built:
    model = BYOL(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), proj_hidden_dim=1024, proj_output_dim=256,
                 ema_momentum=s.ema_start, ema_momentum_end=s.ema_end, **s.optim())
    return Built(model, _byol_views(s))


def build_vicreg(s: Setup) -> Built:
    model = VICReg(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), proj_hidden_dim=1024, proj_output_dim=1024,
                   gather_distributed=False, **s.optim())
    return Built(model, _byol_views(s))


def build_barlowtwins(s: Setup) -> Built:
    model = BarlowTwins(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), proj_hidden_dim=1024,
                        proj_output_dim=1024, gather_distributed=False, **s.optim())
    return Built(model, _byol_views(s))


# DINO and iBOT (running-mean centring): the official main_dino.py's teacher temperature, 0.04 held (0.04 ->
# 0.07 is its long-run schedule), and a lower learning rate than the shared 1e-3 (the papers' rule,
# 5e-4 x batch / 256, gives 1.25e-4 at batch 64; 2.5e-4 for the short run). With 1e-3 and 0.04 -> 0.07 the
# image-level teacher went uniform by step ~100 (entropy 8.31 of log 4096 = 8.32, KL to the student
# 0.003) and neither left its initialisation (k200: DINO -0.2, iBOT -0.1 / -0.15); with these two it
# stays off uniform (entropy 7.6-7.7) and both beat it (docs/benchmarks.md). Sinkhorn-centred DINOv2
# does not go uniform and learns at the shared settings.
DINO_LR, DINO_TEACHER_TEMP = 2.5e-4, 0.04


def build_dino(s: Setup) -> Built:
    model = DINO(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(dynamic_img_size=True), proj_hidden_dim=1024,
                 proj_bottleneck_dim=256, proj_output_dim=4096, freeze_last_layer_epochs=0,
                 teacher_temp=DINO_TEACHER_TEMP, warmup_teacher_temp_epochs=0.3 * s.run_epochs,
                 ema_momentum=s.ema_start, ema_momentum_end=s.ema_end, **s.optim(lr=DINO_LR, weight_decay=0.04))
    views = MultiCropViews(global_crop_size=s.image_size, local_crop_size=s.image_size // 2, num_local_views=2,
                           blur_probs=(0.0, 0.0, 0.0), mean=MEAN, std=STD)
    return Built(model, views, notes="2 global + 2 local (16 px) crops; last layer never frozen")


def ijepa_masks(s: Setup) -> MultiBlockMaskCollator:
    """I-JEPA's 4 target blocks and one context block on the bench's grid (min_keep 4: a 4x4 grid)."""
    return MultiBlockMaskCollator(input_size=s.image_size, patch_size=s.patch_size, num_targets=4, min_keep=4)


def build_ijepa(s: Setup) -> Built:
    # A predictor as wide as the encoder, lr 5e-4 and a slow teacher (the paper's 0.996, held): with the
    # paper's narrow predictor (96 of 192) or the shared fast EMA, the targets collapse (RankMe 21 -> 6)
    # and kNN falls below random init within 150 steps; see docs/benchmarks.md.
    model = IJEPA(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), predictor_embed_dim=192, predictor_depth=4,
                  predictor_num_heads=3, ema_momentum=0.996, ema_momentum_end=0.996,
                  **s.optim(lr=5e-4, weight_decay=0.04, betas=(0.9, 0.999)))
    return Built(model, _masked_views(s, 0.3, 0.0), ijepa_masks(s), notes="predictor 4 x 192, lr 5e-4, EMA 0.996")


def build_mae(s: Setup) -> Built:
    model = MAE(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), decoder_embed_dim=128, decoder_depth=2,
                decoder_num_heads=4, **s.optim())
    collate = RandomMaskCollator(input_size=s.image_size, patch_size=s.patch_size, mask_ratio=0.75)
    return Built(model, _masked_views(s, 0.2, 0.5), collate)


def build_simmim(s: Setup) -> Built:
    model = SimMIM(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), **s.optim(betas=(0.9, 0.999)))
    collate = SimMIMMaskCollator(input_size=s.image_size, patch_size=s.patch_size, mask_patch_size=max(8, s.patch_size),
                                 mask_ratio=0.6)
    return Built(model, _masked_views(s, 0.67, 0.5), collate)


def build_care(s: Setup) -> Built:
    model = CARE(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), proj_hidden_dim=512, proj_output_dim=128,
                 temperature=0.2, equivariance_weight=0.03, gather_distributed=False, **s.optim())
    collate = SharedAugmentCollator(group_size=16, input_size=s.image_size, blur_prob=0.0, mean=MEAN, std=STD)
    return Built(model, WithOriginal(_two_views(s)), collate, notes="SimCLR views + 16-image shared-augment groups")


def _multicrop(s: Setup, num_local: int = 2) -> MultiCropViews:
    return MultiCropViews(global_crop_size=s.image_size, local_crop_size=s.image_size // 2, num_local_views=num_local,
                          blur_probs=(0.0, 0.0, 0.0), mean=MEAN, std=STD)


def build_dinov2(s: Setup, ibot: bool = False) -> Built:
    # iBOT = DINOv2 without KoLeo and Sinkhorn-Knopp (running-mean centring), as recipes/ibot/.
    extra = {"centering": "centering", "koleo_weight": 0.0, "teacher_temp": DINO_TEACHER_TEMP} if ibot else {}
    model = DINOv2(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(dynamic_img_size=True), proj_hidden_dim=1024,
                   proj_bottleneck_dim=256, proj_output_dim=4096, freeze_last_layer_epochs=0,
                   warmup_teacher_temp_epochs=0.3 * s.run_epochs, ema_momentum=s.ema_start, ema_momentum_end=s.ema_end,
                   **extra, **s.optim(lr=DINO_LR if ibot else 1e-3, weight_decay=0.04))
    masks = IBOTMaskCollator(input_size=s.image_size, patch_size=s.patch_size, mask_ratio=(0.1, 0.5), mask_probability=0.5)
    return Built(model, _multicrop(s), masks, notes="DINO's crops + block masks on half the global crops")


def build_lejepa(s: Setup) -> Built:
    model = LeJEPA(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(dynamic_img_size=True), proj_hidden_dim=1024,
                   proj_output_dim=128, **s.optim())
    return Built(model, _multicrop(s), notes="2 global + 2 local crops, lambda 0.05")


def build_swav(s: Setup) -> Built:
    # Short-run settings, both needed: no queue and sharper codes (Sinkhorn epsilon 0.02, not 0.05).
    # A queue 16x the batch joining Sinkhorn from step 16 (queue_start_epoch 0; the paper waits 15 epochs)
    # lets the whole batch, drifting from its stale queued features, take the same few prototypes while the
    # queue meets the equipartition: the features collapse (batch RankMe 11 -> 5 by step 50, final RankMe
    # 2, kNN below random init), with epsilon 0.02 too. Without the queue at epsilon 0.05 they collapse
    # more slowly (batch RankMe 4 by step 150): at random init the scores vary across the batch about as
    # much as epsilon (std 0.066 per prototype), the codes are nearly uniform (entropy 5.1 of log 300 = 5.7)
    # and predicting the uniform code from a collapsed feature is nearly optimal; 0.02 sharpens them.
    model = SwAV(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(dynamic_img_size=True), proj_hidden_dim=1024,
                 proj_output_dim=128, num_prototypes=300, sinkhorn_epsilon=0.02, queue_size=0,
                 freeze_prototypes_steps=50, **s.optim())
    return Built(model, _multicrop(s),
                 notes="300 prototypes, Sinkhorn epsilon 0.02, no queue, prototypes frozen 50 steps")


def build_msn(s: Setup) -> Built:
    model = MSN(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(dynamic_img_size=True), proj_hidden_dim=1024,
                proj_output_dim=256, num_prototypes=1024, ema_momentum=s.ema_start, ema_momentum_end=s.ema_end,
                **s.optim())
    collate = RandomMaskCollator(input_size=s.image_size, patch_size=s.patch_size, mask_ratio=0.3)
    return Built(model, _multicrop(s), collate, notes="30% of the anchor's patches dropped, 2 focal crops")


def build_nnclr(s: Setup) -> Built:
    model = NNCLR(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), proj_hidden_dim=1024, proj_output_dim=256,
                  pred_hidden_dim=1024, support_set_size=4096, temperature=0.2, gather_distributed=False, **s.optim())
    return Built(model, _two_views(s), notes="support set 4,096")


def build_simsiam(s: Setup) -> Built:
    model = SimSiam(backbone=BACKBONE, backbone_kwargs=s.backbone_kwargs(), proj_hidden_dim=1024, proj_output_dim=1024,
                    pred_hidden_dim=256, **s.optim())
    return Built(model, _two_views(s))


METHODS: dict[str, Callable[[Setup], Built]] = {
    "SimCLR": build_simclr, "E-SSL": build_essl, "MoCoV3": build_mocov3, "TiCo": build_tico, "BYOL": build_byol,
    "VICReg": build_vicreg, "BarlowTwins": build_barlowtwins, "DINO": build_dino, "CARE": build_care,
    "IJEPA": build_ijepa, "MAE": build_mae, "SimMIM": build_simmim,
    "DINOv2": build_dinov2, "iBOT": lambda s: build_dinov2(s, ibot=True), "LeJEPA": build_lejepa, "SwAV": build_swav,
    "MSN": build_msn, "NNCLR": build_nnclr, "SimSiam": build_simsiam,
}


def weights_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class Evaluator:
    """Weighted kNN on fixed bank/query shards; random-init results cached per (weights, pooling)."""

    shards: dict[str, list[str]]
    image_size: int
    num_workers: int
    cache: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    def __call__(self, backbone: nn.Module, pooling: str) -> dict[str, float]:
        transform = EvalTransform(self.image_size, mean=MEAN, std=STD)
        feats = {split: extract_features(backbone, build_eval_loader(paths, transform, 250, self.num_workers),
                                         Pooling(pooling))
                 for split, paths in self.shards.items()}
        res = knn_classify(feats["train"].feats, feats["train"].labels, feats["test"].feats, feats["test"].labels,
                           ks=tuple(k for k, _ in KNN), temps=tuple(t for _, t in KNN))
        out = {knn_key(k, t, "top1"): round(float(res[knn_key(k, t, "top1")]), 2) for k, t in KNN}
        out["rankme"] = round(rankme(feats["train"].feats), 1)
        return out

    def random_init(self, backbone: nn.Module, pooling: str) -> dict[str, float]:
        key = (weights_hash(backbone), pooling)
        if key not in self.cache:
            self.cache[key] = self(copy.deepcopy(backbone), pooling)
        return self.cache[key]


class Throughput(L.Callback):
    """Steady-state training img/s: from the end of the first step (workers up, warm) to the last."""

    def __init__(self) -> None:
        self.t_first: float | None = None
        self.t_last = 0.0
        self.images = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
        else:
            self.images += len(batch["key"])
        self.t_last = now

    @property
    def img_per_s(self) -> float:
        return self.images / (self.t_last - self.t_first) if self.t_first and self.t_last > self.t_first else 0.0


def train(built: Built, shards: list[str], args: argparse.Namespace, epochs: int) -> dict[str, Any]:
    """Fit ``built.objective`` for ``args.steps`` steps; returns seconds, img/s and the last loss."""
    dm = ShardDataModule(shards, batch_size_per_device=args.batch_size, num_workers=args.num_workers,
                         train_transform=built.transform, collate_fn=built.collate_fn, shuffle_buffer=1000,
                         seed=args.seed, pin_memory=False)
    speed = Throughput()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, max_epochs=epochs, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=args.progress,
                        callbacks=[speed], default_root_dir=args.out, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(built.objective, datamodule=dm)
    seconds = time.perf_counter() - start
    loss = trainer.callback_metrics.get("train/loss")
    return {"train_seconds": round(seconds, 1), "img_per_s": round(speed.img_per_s, 1),
            "steps": trainer.global_step, "last_loss": None if loss is None else round(float(loss), 4)}


def run_method(name: str, setup: Setup, evaluate: Evaluator, shards: list[str], args: argparse.Namespace) -> dict:
    L.seed_everything(args.seed, verbose=False)  # the same initial backbone for every objective
    built = METHODS[name](setup)
    init = built.objective.eval_backbone()
    row: dict[str, Any] = {"pooling": built.pooling, "init_hash": weights_hash(init), "notes": built.notes,
                           "hparams": {k: v for k, v in built.objective.hparams.items() if k != "backbone_kwargs"}}
    start = time.perf_counter()
    row["random_init"] = evaluate.random_init(init, built.pooling)
    row.update(train(built, shards, args, setup.run_epochs))
    row["pretrained"] = evaluate(built.objective.eval_backbone(), built.pooling)
    row["delta"] = {k: round(row["pretrained"][k] - row["random_init"][k], 2) for k in row["pretrained"] if "top1" in k}
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def ensure_shards(root: Path, cifar_root: Path) -> dict[str, list[str]]:
    """``<root>/cifar10-{train,test}`` tar lists, written from ``cifar_root`` when missing."""
    tars = {}
    for split in ("train", "test"):
        path = root / f"cifar10-{split}"
        if not (path / "manifest.json").exists():
            write_shards(open_source("cifar10", root=cifar_root, split=split), path, prefix=f"cifar10-{split}")
        tars[split] = [str(t) for t in sorted(path.glob("*.tar"))]
    return tars


def print_table(rows: dict[str, dict]) -> None:
    keys = [knn_key(k, t, "top1") for k, t in KNN]
    print(f"\n{'objective':<12}{'pool':>7}" + "".join(f"{'init ' + k:>20}{'pre':>7}{'delta':>7}" for k in keys)
          + f"{'img/s':>8}{'train s':>9}{'total s':>9}{'rankme':>8}")
    for name, r in rows.items():
        cells = "".join(f"{r['random_init'][k]:>20.1f}{r['pretrained'][k]:>7.1f}{r['delta'][k]:>+7.1f}" for k in keys)
        print(f"{name:<12}{r['pooling']:>7}{cells}{r['img_per_s']:>8.1f}{r['train_seconds']:>9.0f}{r['seconds']:>9.0f}"
              f"{r['pretrained']['rankme']:>8.1f}")


def plot(rows: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = knn_key(*KNN[0], "top1")
    names = list(rows)
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 3.0), dpi=100)
    ax.bar([i - 0.2 for i in x], [rows[n]["random_init"][key] for n in names], 0.4, label="random init", color="#bbb")
    ax.bar([i + 0.2 for i in x], [rows[n]["pretrained"][key] for n in names], 0.4, label="pretrained", color="#3b75af")
    ax.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("kNN top-1 % (k=20)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--steps", type=int, default=500, help="optimizer steps per objective (the budget)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--depth", type=int, default=2, help="ViT blocks (ViT-Tiny width 192, 3 heads)")
    p.add_argument("--patch-size", type=int, default=8, help="4 (64 tokens at 32 px) or 8 (16 tokens)")
    p.add_argument("--ema", type=float, nargs=2, default=(0.97, 0.995), metavar=("START", "END"),
                   help="EMA teacher momentum, cosine-increased from START to END over the run")
    p.add_argument("--pos-embed", choices=("sincos", "learn"), default="sincos",
                   help="fixed 2-D sin-cos (default) or timm's learned positional embedding, for every objective")
    p.add_argument("--train-shards", type=int, default=20, help="CIFAR-10 train shards (1,000 images) to train on")
    p.add_argument("--bank-shards", type=int, default=5)
    p.add_argument("--query-shards", type=int, default=2)
    p.add_argument("--shards", type=Path, default=Path("/tmp/shards"), help="holds cifar10-{train,test}/")
    p.add_argument("--cifar-root", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10")
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_objectives")
    p.add_argument("--plot", type=Path, default=None, help="bar chart PNG, e.g. docs/objectives_cifar10.png")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--update", action="store_true",
                   help="rerun only --methods and replace their rows in an existing <out>/result.json (same budget)")
    return p.parse_args()


def main() -> int:
    args = _parse()
    torch.set_num_threads(args.threads)
    state = machine()
    print(f"machine: {state}")
    tars = ensure_shards(args.shards, args.cifar_root)
    train_tars = tars["train"][: args.train_shards]
    epochs = math.ceil(args.steps * args.batch_size / (1000 * len(train_tars)))
    setup = Setup(patch_size=args.patch_size, depth=args.depth, run_epochs=epochs, ema_start=args.ema[0],
                  ema_end=args.ema[1], sincos_pos_embed=args.pos_embed == "sincos")
    evaluate = Evaluator({"train": tars["train"][: args.bank_shards], "test": tars["test"][: args.query_shards]},
                         setup.image_size, args.num_workers)
    start = time.perf_counter()
    rows: dict[str, dict] = {}
    previous = json.loads((args.out / "result.json").read_text()) if args.update else None
    if previous is not None:
        backbone = {"name": BACKBONE, **setup.backbone_kwargs()}
        if (previous["budget"]["steps"], previous["budget"]["batch_size"], previous["backbone"]) != \
                (args.steps, args.batch_size, backbone):
            raise SystemExit(f"--update: {args.out / 'result.json'} has another budget or backbone")
        rows.update(previous["objectives"])
    for name in args.methods:
        rows[name] = run_method(name, setup, evaluate, train_tars, args)
        print(f"{name}: {json.dumps({k: rows[name][k] for k in ('random_init', 'pretrained', 'delta', 'img_per_s')})}",
              flush=True)
    print_table(rows)
    failed = [n for n, r in rows.items() if min(r["delta"].values()) <= 0]
    result = {"machine": state, "updated": args.methods if previous is not None else [],
              "machine_end_load": round(os.getloadavg()[0], 1),
              "seconds": round(time.perf_counter() - start, 1),
              "budget": {"steps": args.steps, "batch_size": args.batch_size, "images": args.steps * args.batch_size,
                         "train_images": 1000 * len(train_tars), "epochs": epochs,
                         "ema": list(args.ema)},
              "backbone": {"name": BACKBONE, **setup.backbone_kwargs()}, "knn": {
                  "bank": 1000 * args.bank_shards, "queries": 1000 * args.query_shards, "settings": KNN},
              "threads": args.threads, "seed": args.seed, "not_beating_random_init": failed, "objectives": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    if args.plot:
        title = (f"CIFAR-10 kNN, ViT-Tiny/{args.patch_size} x {args.depth} blocks, "
                 f"{args.steps} steps x {args.batch_size}")
        plot(rows, args.plot, title)
    print(f"\n{len(args.methods)} objectives run in {result['seconds']:.0f} s; result: {args.out / 'result.json'}")
    if failed:
        print(f"NOT beating random init: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
