"""Accuracy at equal budget: SimCLR, I-JEPA, iBOT and LeJEPA pretrained with sslkit and with lightly's
reference (``bench/vs_lightly.py``'s and ``bench/lightly_new_methods.py``'s modules) for the same steps on
the same CIFAR-10 images, then kNN top-1. iBOT and LeJEPA get 2 global 32-px + 2 local 16-px crops
(iBOT: the same block masks on both sides, from ``sslkit.masking.ibot_masks``).

Both sides of a method see the identical batch sequence: images drawn with one seeded generator,
views made once per step by ``BatchViews`` on the CPU (the same augmented tensors go to both), and
for I-JEPA each library's own mask collator with the same block settings. The two models train in
lockstep (one step each, alternating), so their wall times are comparable on a shared machine.
Same architecture (a small ViT at 32 px, 4-px patches), AdamW, constant lr; kNN (k=20, T=0.07,
cosine) with the backbone's pooled features: a bank of ``--num-bank`` train images, ``--num-test``
test images. A randomly initialised backbone gives the floor.

Usage::

    python bench/quality.py                  # CIFAR-10 shards in /tmp/shards (see docs/benchmarks.md)
    python bench/quality.py --steps 300 --depth 6 --dim 192
    python bench/quality.py --seeds 0 1 2    # one run per seed, then the mean difference and its spread
    python bench/quality.py --seeds 0 1 2 --sslkit-precision bf16   # vs the fp32 run: same batches and inits
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from common import machine, save_json  # noqa: I001  (bench/ is on sys.path)
from vs_lightly import LightlyIJEPA, LightlySimCLR, make_step
from sslkit.data import ShardLoader, ShardStream
from sslkit.evaluation.knn import knn_classify
from sslkit.transforms.gpu import BatchViews, UInt8Image

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def load_uint8(shards: str, num: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``num`` images (deterministic order) as uint8 ``(N, 3, 32, 32)`` and their labels."""
    stream = ShardStream(shards, batch_size=500, transform=UInt8Image(), shuffle=False, remainder="none")
    images, labels = [], []
    for batch in itertools.islice(ShardLoader(stream, num_workers=0), -(-num // 500)):
        images.append(batch["views"][0])
        labels.append(batch["label"])
    return torch.cat(images)[:num], torch.cat(labels)[:num]


@torch.no_grad()
def features(backbone: nn.Module, images: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    backbone.eval()
    out = [backbone((x.float() / 255 - mean) / std) for x in images.split(500)]
    backbone.train()
    return torch.cat(out).numpy()


def knn_top1(backbone: nn.Module, data: dict[str, torch.Tensor]) -> float:
    scores = knn_classify(features(backbone, data["bank"]), data["bank_labels"].numpy(),
                          features(backbone, data["test"]), data["test_labels"].numpy(), ks=(20,), temps=(0.07,))
    return next(v for k, v in scores.items() if "top1" in k)


def build(method: str, vit: dict[str, Any], seed: int = 0, context: str = "all") -> tuple[nn.Module, nn.Module, Any, Any]:
    """(sslkit objective, lightly reference, sslkit collate, lightly collate), identical initial weights."""
    from sslkit.objectives import IJEPA, SimCLR

    torch.manual_seed(seed)
    if method in NEW_METHODS:
        return build_new(method, vit, seed)
    if method == "simclr":
        ours = SimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs=vit, proj_hidden_dim=1024, proj_output_dim=128,
                      temperature=0.2, gather_distributed=False)
        torch.manual_seed(seed)
        return ours, LightlySimCLR(vit), None, None
    from lightly.data.ijepa_collate import IJEPAMaskCollator

    from sslkit.masking import MultiBlockMaskCollator

    pool = {**vit, "class_token": False, "global_pool": "avg", "sincos_pos_embed": True}  # as lightly's masked ViT
    ours = IJEPA(backbone="vit_tiny_patch16_224", backbone_kwargs=pool, predictor_embed_dim=96, predictor_depth=4,
                 predictor_num_heads=3, ema_momentum=0.996, ema_momentum_end=0.996)
    torch.manual_seed(seed)
    ref = LightlyIJEPA(vit, predictor_depth=4)
    # lightly's MaskedVisionTransformerTIMM re-initialises the ViT it wraps (MAE's xavier init, sin-cos
    # positions), so the same seed does not give the same weights: start sslkit's student and teacher
    # from lightly's encoder. (With each library's own init, timm's trails by ~3 points at 40 steps;
    # docs/benchmarks.md.)
    ours.backbone.load_state_dict(ref.encoder.vit.state_dict())
    ours.teacher_backbone.load_state_dict(ref.encoder.vit.state_dict())
    masks = dict(target_scale=(0.15, 0.2), target_aspect_ratio=(0.75, 1.5), context_scale=(0.85, 1.0), min_keep=4)
    ours_collate = MultiBlockMaskCollator(input_size=32, patch_size=vit["patch_size"], num_targets=4, seed=seed,
                                          context=context, **masks)
    ref_collate = IJEPAMaskCollator(input_size=32, patch_size=vit["patch_size"], enc_mask_scale=(0.85, 1.0),
                                    pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=4)
    return ours, ref, ours_collate, ref_collate


NEW_METHODS = ("ibot", "lejepa")


def build_new(method: str, vit: dict[str, Any], seed: int) -> tuple[nn.Module, nn.Module, Any, Any]:
    """iBOT (sslkit's DINOv2 objective in its iBOT setting) or LeJEPA, and lightly's, with identical weights."""
    from lightly_new_methods import LightlyIBOT, LightlyLeJEPA
    from sslkit.objectives import DINOv2, LeJEPA

    dynamic = {**vit, "dynamic_img_size": True}
    if method == "lejepa":
        ours = LeJEPA(backbone="vit_tiny_patch16_224", backbone_kwargs=dynamic, proj_hidden_dim=1024, proj_output_dim=128)
        torch.manual_seed(seed)
        return ours, LightlyLeJEPA(vit), None, None
    ref = LightlyIBOT(vit, out_dim=1024)
    ours = DINOv2(backbone="vit_tiny_patch16_224", backbone_kwargs=dynamic, proj_hidden_dim=512, proj_bottleneck_dim=64,
                  proj_output_dim=1024, norm_last_layer=True, freeze_last_layer_epochs=0, centering="centering",
                  koleo_weight=0.0, teacher_temp=0.04, warmup_teacher_temp=0.04, ema_momentum=0.99,
                  ema_momentum_end=0.99)
    # lightly's masked ViT re-initialises the ViT it wraps (as for I-JEPA): start sslkit from its weights.
    for mine, theirs in ((ours.backbone, ref.backbone.vit), (ours.teacher_backbone, ref.teacher_backbone.vit),
                         (ours.projection_head, ref.head), (ours.teacher_projection_head, ref.teacher_head)):
        mine.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        ours.mask_token.copy_(ref.backbone.mask_token)
    return ours, ref, None, None


def multicrop_batch(images: torch.Tensor, method: str, g: torch.Generator, patch_size: int) -> dict[str, Any]:
    """2 global 32-px + 2 local 16-px crops (MultiCropViews' scales), and iBOT's block masks."""
    from sslkit.masking import ibot_masks

    views = BatchViews(32, num_views=2, min_scale=0.4, blur_prob=0.0, mean=CIFAR_MEAN, std=CIFAR_STD)(images, generator=g)
    views += BatchViews(16, num_views=2, min_scale=0.05, max_scale=0.4, blur_prob=0.0, mean=CIFAR_MEAN,
                        std=CIFAR_STD)(images, generator=g)
    batch: dict[str, Any] = {"views": views}
    if method == "ibot":
        grid = (32 // patch_size,) * 2
        batch["masks_ibot"] = ibot_masks(2 * len(images), grid, (0.1, 0.5), 0.5, g)
    return batch


def views_for(method: str) -> BatchViews:
    if method == "simclr":  # recipes/simclr/vit_tiny_cifar10.yaml's augmentation
        return BatchViews(32, num_views=2, min_scale=0.2, cj_strength=0.5, blur_prob=0.0, mean=CIFAR_MEAN, std=CIFAR_STD)
    # I-JEPA: a random resized crop only (recipes/ijepa/vit_tiny_cifar10.yaml)
    return BatchViews(32, num_views=1, min_scale=0.3, cj_prob=0.0, gray_prob=0.0, blur_prob=0.0, hflip_prob=0.0,
                      mean=CIFAR_MEAN, std=CIFAR_STD)


def run(method: str, data: dict[str, torch.Tensor], args: argparse.Namespace, seed: int = 0) -> dict[str, float]:
    from common import stub_trainer

    vit = dict(img_size=32, patch_size=4, depth=args.depth, embed_dim=args.dim, num_heads=3)
    ours, ref, ours_collate, ref_collate = build(method, vit, seed, args.ijepa_context)
    ours.trainer = stub_trainer(total_steps=args.steps)
    out = {"random": knn_top1(ours.eval_backbone(), data)}
    amp = args.sslkit_precision == "bf16"  # sslkit's side under bf16 autocast (its fp32 loss islands kept)
    steps = {"sslkit": make_step(ours, lambda b: ours.training_step(b, 0), "cpu", amp, sslkit=True, lr=args.lr),
             "lightly": make_step(ref, ref.step, "cpu", False, sslkit=False, lr=args.lr)}
    aug, g = views_for(method), torch.Generator().manual_seed(seed + 1)
    seconds = {"sslkit": 0.0, "lightly": 0.0}
    train, train_labels = data["train"], data["train_labels"]
    for i in range(args.steps):
        idx = torch.randint(0, len(train), (args.batch_size,), generator=g)
        if method in NEW_METHODS:  # the same views (and masks) for both sides
            _lockstep(steps, seconds, *[multicrop_batch(train[idx], method, g, vit["patch_size"])] * 2, i)
            ours.trainer.global_step += 1
            continue
        views = aug(train[idx], generator=g)
        keys = [f"{int(j):06d}-{i}" for j in idx]
        batch = {"views": views, "label": train_labels[idx], "key": keys}
        if method == "ijepa":
            ours_batch = ours_collate([{"views": [v], "label": 0, "key": k} for v, k in zip(views[0], keys)])
            _, enc, pred = ref_collate([(v,) for v in views[0]])
            ref_batch = {"views": views, "lightly_masks_enc": enc, "lightly_masks_pred": pred}
        else:
            ours_batch = ref_batch = batch
        _lockstep(steps, seconds, ours_batch, ref_batch, i)
        ours.trainer.global_step += 1
    out["sslkit"] = knn_top1(ours.eval_backbone(), data)
    ref_eval = {"ijepa": lambda: ref.target_encoder, "ibot": lambda: ref.teacher_backbone}.get(method, lambda: ref.backbone)()
    out["lightly"] = knn_top1(ref_eval, data)
    out["sslkit_s"], out["lightly_s"] = seconds["sslkit"], seconds["lightly"]
    return out


def _lockstep(steps: dict[str, Any], seconds: dict[str, float], ours_batch: dict, ref_batch: dict, i: int) -> None:
    """One step of each side, alternating which goes first, timing each."""
    for side, b in (("sslkit", ours_batch), ("lightly", ref_batch)) if i % 2 == 0 else \
            (("lightly", ref_batch), ("sslkit", ours_batch)):
        t0 = time.perf_counter()
        steps[side](b)
        seconds[side] += time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-shards", default="/tmp/shards/cifar10-train")
    p.add_argument("--test-shards", default="/tmp/shards/cifar10-test")
    p.add_argument("--methods", nargs="+", default=["simclr", "ijepa"], choices=["simclr", "ijepa", *NEW_METHODS])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--dim", type=int, default=96)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--num-train", type=int, default=10000)
    p.add_argument("--num-bank", type=int, default=5000)
    p.add_argument("--num-test", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ijepa-context", choices=("all", "truncate"), default="all",
                   help="sslkit's I-JEPA context policy (MultiBlockMaskCollator's context=)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="one run per seed (initialisation, batches, masks); with several, the mean and spread")
    p.add_argument("--sslkit-precision", choices=("fp32", "bf16"), default="fp32",
                   help="sslkit's side in bf16 autocast: same seeds, compare its kNN with an fp32 run's")
    p.add_argument("--json", default=None, help="also write the figures here (for bench/common.py --chart)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    print(f"ViT depth {args.depth}, width {args.dim}, 4-px patches at 32 px; {args.steps} steps of batch "
          f"{args.batch_size} per side; AdamW lr {args.lr}; kNN k=20 T=0.07 on {args.num_bank} bank / "
          f"{args.num_test} test images\n")
    train, train_labels = load_uint8(args.train_shards, args.num_train)
    test, test_labels = load_uint8(args.test_shards, args.num_test)
    data = {"train": train, "train_labels": train_labels, "bank": train[: args.num_bank],
            "bank_labels": train_labels[: args.num_bank], "test": test, "test_labels": test_labels}
    print("| method | random init | sslkit kNN top-1 | lightly kNN top-1 | sslkit - lightly | sslkit s | lightly s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results = {}
    for method in args.methods:
        for seed in args.seeds:
            name = method if len(args.seeds) == 1 else f"{method} seed {seed}"
            r = results[name] = run(method, data, args, seed)
            print(f"| {name} | {r['random']:.1f} | {r['sslkit']:.1f} | {r['lightly']:.1f} | "
                  f"{r['sslkit'] - r['lightly']:+.1f} | {r['sslkit_s']:.0f} | {r['lightly_s']:.0f} |", flush=True)
    if len(args.seeds) > 1:
        print()
        for method in args.methods:
            diffs = torch.tensor([results[f"{method} seed {s}"]["sslkit"] - results[f"{method} seed {s}"]["lightly"]
                                  for s in args.seeds])
            print(f"{method}: sslkit - lightly over {len(diffs)} seeds: mean {diffs.mean():+.2f}, "
                  f"sd {diffs.std():.2f}, standard error {diffs.std() / len(diffs) ** 0.5:.2f}")
    if args.json:
        save_json(args.json, results)


if __name__ == "__main__":
    main()
