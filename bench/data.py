"""Data-path throughput: shards → decode → views → batch (img/s per worker count) against the rate the
training step consumes, so the report shows the headroom; and device-side vs worker-side augmentation.

Two ways to make SimCLR's two views, both measured here in the same run:

- ``workers``: lightly's per-image transforms (``SimCLRViews``) in DataLoader workers (the default);
- ``device``: workers only decode to uint8 (``UInt8Image``), ``BatchViews`` augments the whole batch
  on the training device (the GPU when there is one; on a CPU-only machine the training process).

Usage::

    python bench/data.py                        # CPU: CIFAR-10 shards, SimCLR ViT-Tiny/4 at 32 px
    python bench/data.py --device cuda          # GPU: ViT-S/16 at 224 px on synthetic JPEG shards
    python bench/data.py --device cuda --shards /path/to/imagenet/shards

Loader rates are measured with an instantly-consuming loop (the workers are the bottleneck), the
step rate with ready batches in memory, and end-to-end with the loader feeding the step. Each
configuration is measured ``--repeats`` times, configurations interleaved; medians are reported.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import alternate, machine, median, save_json, stub_trainer  # noqa: I001  (bench/ is on sys.path)
from sslkit.data import ShardLoader, ShardStream
from sslkit.objectives import SimCLR
from sslkit.transforms import MaskedImageViews, MultiCropViews, SimCLRViews
from sslkit.transforms.gpu import BatchViews, UInt8Image

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def make_loader(shards: str, transform: Callable, batch_size: int, workers: int, pin: bool,
                shuffle_buffer: int = 500) -> ShardLoader:
    stream = ShardStream(shards, batch_size=batch_size, transform=transform, shuffle=True,
                         shuffle_buffer=shuffle_buffer)
    return ShardLoader(stream, num_workers=workers, pin_memory=pin, persistent_workers=True,
                       prefetch_factor=4 if workers else None)


def loader_rate(loader: ShardLoader, batches: int) -> float:
    """Images per second the loader delivers to a consumer that takes no time (steady state)."""
    it = iter(loader)
    for _ in range(max(loader.num_workers, 1)):  # worker start-up
        next(it)
    t0 = time.perf_counter()
    n = sum(len(b["key"]) for b in itertools.islice(it, batches))
    rate = n / (time.perf_counter() - t0)
    del it
    return rate


class Step:
    """One SimCLR training step (forward, backward, AdamW) of sslkit's objective on given views."""

    def __init__(self, model: SimCLR, device: str, amp: bool) -> None:
        self.model = model.to(device).train()
        self.model.trainer = stub_trainer()
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
        self.device, self.amp = device, amp

    def __call__(self, batch: dict[str, Any]) -> None:
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.amp):
            loss = self.model.training_step(batch, 0)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {**batch, "views": [v.to(device, non_blocking=True) for v in batch["views"]]}


def end_to_end(loader: ShardLoader, step: Step, aug: BatchViews | None, batches: int) -> float:
    """Images per second of loader → (device augmentation) → step, after one warm-up batch."""
    it: Iterator = iter(loader)
    step(augment(to_device(next(it), step.device), aug))
    if step.device == "cuda":
        torch.cuda.synchronize()
    t0, n = time.perf_counter(), 0
    for batch in itertools.islice(it, batches):
        step(augment(to_device(batch, step.device), aug))
        n += len(batch["key"])
    if step.device == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def augment(batch: dict[str, Any], aug: BatchViews | None) -> dict[str, Any]:
    return batch if aug is None else {**batch, "views": aug(batch["views"][0])}


def synthetic_jpeg_shards(out: Path, num: int, size: tuple[int, int]) -> str:
    """ImageNet-like JPEGs (smooth colour fields + texture, quality 90) for machines without a dataset."""
    from PIL import Image

    from sslkit.data import ImageSource, write_shards

    rng = np.random.default_rng(0)

    def samples() -> Iterator[dict[str, Any]]:
        for i in range(num):
            low = rng.random((size[1] // 16, size[0] // 16, 3))
            img = Image.fromarray((low * 255).astype(np.uint8)).resize(size, Image.BICUBIC)
            arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 20, (size[1], size[0], 3))
            yield f"{i:07d}", Image.fromarray(arr.clip(0, 255).astype(np.uint8)), i % 1000

    source = ImageSource("synthetic-jpeg", None, num, samples)
    write_shards(source, out, prefix="synth", image_format="jpg", quality=90, progress=False)
    return str(out)


class Decoded:
    """``transform`` with the reader's decode size set explicitly (``None``: full-size JPEG decode)."""

    def __init__(self, transform: Callable, draft: int | None) -> None:
        self.transform = transform
        self.decode_size = (draft, draft) if draft else None

    def __call__(self, image: Any) -> Any:
        return self.transform(image)


def per_image_flops(backbone: str, sizes: list[int], **kwargs: Any) -> float:
    """Training FLOPs of one image's views through ``backbone`` (3x forward: forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    from sslkit.backbones import create_backbone

    model = create_backbone(backbone, **kwargs).eval()
    total = 0.0
    for size in sizes:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, size, size))
        total += 3 * counter.get_total_flops()
    return total


def imagenet_pipelines() -> dict[str, tuple[Callable, list[int]]]:
    """Worker transform and view sizes per pipeline, as the ImageNet recipes configure them."""
    return {
        "SimCLR 2x224, lightly views in workers": (SimCLRViews(input_size=224, blur_prob=0.5), [224, 224]),
        "DINO 2x224+10x96, lightly views in workers": (
            MultiCropViews(num_local_views=10), [224, 224] + [96] * 10),
        "MAE/I-JEPA 1x224 crop+flip in workers": (MaskedImageViews(input_size=224, min_scale=0.2, hflip_prob=0.5),
                                                 [224]),
        "decode-only workers (UInt8Image 256) + device aug": (UInt8Image(size=256), [224, 224]),
    }


def cpu_rate(loader: ShardLoader, batches: int) -> float:
    """Images per CPU-second of an in-process loader (``num_workers=0``): one worker's rate on one core.

    CPU time, not wall time, so other jobs on a shared machine do not change the figure; the code path
    (tar read, decode, transform, collate) is the one a DataLoader worker runs.
    """
    it = iter(loader)
    next(it)  # stream start-up
    t0 = time.process_time()
    n = sum(len(b["key"]) for b in itertools.islice(it, batches))
    return n / (time.process_time() - t0)


IMAGENET_TRAIN = 1_281_167
PEAK_BF16 = 790e12  # bench/backbone.py's H200 dense bf16 figure; MFU targets are against it


def recipe_flops() -> dict[str, tuple[float, str]]:
    """Training FLOPs per image of the ImageNet recipes' networks, and the worker pipeline each used to need.

    Approximations: MAE's encoder sees 49 of 196 tokens (= a 112-px image) plus its 8 x 512 decoder on all
    196; I-JEPA's target encoder runs forward only (1/3 of a training pass) on 256 tokens and its context
    encoder trains on ~45% of them (~100 tokens = a 140-px image); predictors and heads are left out.
    """
    vit = "vit_small_patch16_224"
    return {
        "SimCLR / BYOL / Barlow / VICReg, ResNet-50 2x224": (per_image_flops("resnet50", [224, 224]), "SimCLR"),
        "MoCo v3, ViT-S/16 2x224": (per_image_flops(vit, [224, 224], dynamic_img_size=True), "SimCLR"),
        "DINO, ViT-S/16 2x224 + 10x96": (per_image_flops(vit, [224] * 2 + [96] * 10, dynamic_img_size=True), "DINO"),
        "MAE, ViT-B/16 (25% visible) + decoder": (
            per_image_flops("vit_base_patch16_224", [112], dynamic_img_size=True)
            + per_image_flops("vit_base_patch16_224", [224], embed_dim=512, depth=8, num_heads=16), "MAE"),
        "I-JEPA, ViT-H/14": (per_image_flops("vit_huge_patch14_224", [224], dynamic_img_size=True) / 3
                             + per_image_flops("vit_huge_patch14_224", [140], dynamic_img_size=True), "MAE"),
    }


def epoch_projection(args: argparse.Namespace, per_core: dict[str, float]) -> list[dict[str, Any]]:
    """Per-GPU img/s, minutes per ImageNet epoch and cores per GPU, at the anchor's FLOP/s and at 45% MFU."""
    anchor_flops = args.anchor * per_image_flops("vit_small_patch16_224", [224, 224], dynamic_img_size=True)
    print(f"\nThe anchor's step runs {anchor_flops / 1e12:.0f} TFLOP/s ({100 * anchor_flops / PEAK_BF16:.1f}% MFU of"
          f" {PEAK_BF16 / 1e12:.0f}); the issue's target is 45% MFU. Per recipe, one H200, ImageNet-1k"
          f" ({IMAGENET_TRAIN:,} images); cores for the default (decode-only, 500x375 JPEG) and the old per-image path:\n")
    print("| recipe | GFLOP/img | img/s (anchor FLOP/s / 45% MFU) | min/epoch/GPU | cores: decode-only | cores: lightly workers |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = []
    for name, (flops, pipeline) in recipe_flops().items():
        rates = (anchor_flops / flops, 0.45 * PEAK_BF16 / flops)
        minutes = tuple(IMAGENET_TRAIN / r / 60 for r in rates)
        decode, workers = (tuple(r / per_core[k] for r in rates) for k in ("decode", pipeline))
        rows.append({"recipe": name, "gflop": flops / 1e9, "img_s": rates, "minutes": minutes,
                     "cores_decode": decode, "cores_workers": workers})
        print(f"| {name} | {flops / 1e9:,.0f} | {rates[0]:,.0f} / {rates[1]:,.0f} | {minutes[0]:,.0f} / {minutes[1]:,.0f}"
              f" | {decode[0]:.1f} / {decode[1]:.1f} | {workers[0]:.0f} / {workers[1]:.0f} |")
    return rows


def imagenet_cores(args: argparse.Namespace) -> None:
    """Per-core img/s of the 224-px pipelines on ImageNet-sized JPEGs, and the cores one GPU needs."""
    torch.set_num_threads(1)
    sizes = [(500, 375), (1600, 1200)]  # ImageNet's most common size; a camera photo of a user's own set
    tmp = Path(tempfile.mkdtemp())
    shards = {s: synthetic_jpeg_shards(tmp / f"{s[0]}x{s[1]}", args.images, s) for s in sizes}
    batch = args.batch_size or 8
    rates: dict[tuple[str, tuple[int, int], int | None], list[float]] = {}
    for _ in range(args.repeats or 3):
        for (name, (tf, _views)), size, draft in itertools.product(imagenet_pipelines().items(), sizes, (None, 256)):
            loader = make_loader(shards[size], Decoded(tf, draft), batch, 0, pin=False, shuffle_buffer=batch)
            rates.setdefault((name, size, draft), []).append(cpu_rate(loader, args.images // batch - 2))
    vit_s = per_image_flops("vit_small_patch16_224", [224, 224], dynamic_img_size=True)
    gpu_rate = {name: args.anchor * vit_s / per_image_flops("vit_small_patch16_224", views, dynamic_img_size=True)
                for name, (_, views) in imagenet_pipelines().items()}
    print(f"GPU anchor: {args.anchor:.0f} img/s for a 2x224 ViT-S/16 step on one H200 (stable-pretraining, Barlow"
          " Twins); other view sets scaled by their ViT-S/16 training FLOPs\n")
    print("| pipeline (1 worker = 1 core) | JPEG size | decode | img/s per core | ViT-S/16 GPU img/s | cores per GPU |")
    print("|---|---|---|---:|---:|---:|")
    table = []
    for (name, size, draft), r in rates.items():
        rate = median(r)
        row = {"pipeline": name, "jpeg": f"{size[0]}x{size[1]}", "decode": f"draft {draft}" if draft else "full",
               "per_core": rate, "gpu": gpu_rate[name], "cores": gpu_rate[name] / rate}
        table.append(row)
        print(f"| {name} | {row['jpeg']} | {row['decode']} | {rate:,.1f} | {row['gpu']:,.0f} | {row['cores']:,.1f} |")
    at = {row["pipeline"].split(" ")[0].split(",")[0]: row["per_core"] for row in table
          if row["jpeg"] == "500x375" and row["decode"] != "full"}
    at["decode"] = at.pop("decode-only")
    at["MAE"] = at.pop("MAE/I-JEPA")
    projection = epoch_projection(args, at)
    if args.json:
        save_json(args.json, {"anchor_img_s": args.anchor, "rows": table, "projection": projection})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imagenet", action="store_true",
                   help="per-core img/s of the ImageNet recipes' 224-px pipelines and the cores per GPU they need")
    p.add_argument("--images", type=int, default=96, help="--imagenet: JPEGs per synthetic shard set")
    p.add_argument("--anchor", type=float, default=870.0,
                   help="--imagenet: GPU img/s of a 2x224 ViT-S/16 step (stable-pretraining's Barlow Twins on an H200)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--shards", default=None, help="default: /tmp/shards/cifar10-train (cpu), synthetic JPEGs (cuda)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 (cpu), 256 (cuda)")
    p.add_argument("--workers", type=int, nargs="+", default=None, help="default: 1 2 (cpu), all cores (cuda)")
    p.add_argument("--batches", type=int, default=None, help="batches per loader measurement")
    p.add_argument("--steps", type=int, default=None, help="batches per end-to-end measurement")
    p.add_argument("--repeats", type=int, default=None, help="default: 2 (cpu), 3 (cuda)")
    p.add_argument("--json", default=None, help="also write the figures here (for bench/common.py --chart)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the training process on CPU (1: oversubscribed OpenMP on a shared 2-core machine stalls)")
    args = p.parse_args()
    if args.imagenet:
        imagenet_cores(args)
        return
    cuda = args.device == "cuda"
    torch.manual_seed(0)
    if not cuda:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cuda:
        size, res, batch_size = 224, 256, args.batch_size or 256
        workers = args.workers or [cpus]
        shards = args.shards or synthetic_jpeg_shards(Path(tempfile.mkdtemp()) / "jpeg", 8192, (320, 288))
        model = SimCLR(backbone="vit_small_patch16_224", proj_hidden_dim=2048, proj_output_dim=128, temperature=0.1)
        views_cpu = SimCLRViews(input_size=size, min_scale=0.08, blur_prob=0.5)  # lightly's ImageNet SimCLR views
        views_dev = BatchViews(input_size=size, min_scale=0.08, blur_prob=0.5)
        decode = UInt8Image(size=res)
        label = f"ViT-S/16 SimCLR at {size} px, bf16, batch {batch_size}"
    else:
        size, batch_size = 32, args.batch_size or 64
        workers = args.workers or [1, 2]
        shards = args.shards or "/tmp/shards/cifar10-train"
        model = SimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs={"img_size": 32, "patch_size": 4},
                       proj_hidden_dim=1024, proj_output_dim=128, temperature=0.2)  # recipes/simclr/vit_tiny_cifar10
        kw = dict(input_size=32, min_scale=0.2, cj_strength=0.5, blur_prob=0.0, mean=CIFAR_MEAN, std=CIFAR_STD)
        views_cpu, views_dev, decode = SimCLRViews(**kw), BatchViews(**kw), UInt8Image()
        label = f"ViT-Tiny/4 SimCLR at {size} px, fp32, batch {batch_size}"
    batches = args.batches or (12 if cuda else 10)
    steps = args.steps or (20 if cuda else 2)
    args.repeats = args.repeats or (3 if cuda else 2)
    print(f"shards: {shards}; {label}; workers {workers}; {args.repeats} interleaved repeats, medians\n")

    # 1. Loader throughput per worker count, each pipeline.
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for w, (kind, tf) in itertools.product(workers, (("workers", views_cpu), ("device", decode))):
            loader = make_loader(shards, tf, batch_size, w, pin=cuda)
            rates.setdefault((kind, w), []).append(loader_rate(loader, batches * (4 if kind == "device" else 1)))
            del loader

    # 2. What the step consumes: ready float views vs uint8 + BatchViews on the device.
    step = Step(model, args.device, amp=cuda)
    first_cpu = next(iter(make_loader(shards, views_cpu, batch_size, 0, False)))
    first_u8 = next(iter(make_loader(shards, decode, batch_size, 0, False)))
    float_batch, u8_batch = to_device(first_cpu, args.device), to_device(first_u8, args.device)
    times = alternate({
        "step": lambda: step(float_batch),
        "aug+step": lambda: step(augment(u8_batch, views_dev)),
        "aug": lambda: augment(u8_batch, views_dev),
    }, repeats=args.repeats if not cuda else 20, device=args.device)
    step_rate = {k: batch_size / median(v) for k, v in times.items()}

    print("| pipeline | workers | loader img/s | step consumes img/s | headroom |")
    print("|---|---:|---:|---:|---:|")
    for (kind, w), r in sorted(rates.items(), key=lambda kv: (kv[0][0] != "workers", kv[0][1])):
        consume = step_rate["step"] if kind == "workers" else step_rate["aug+step"]
        print(f"| {kind} | {w} | {median(r):,.0f} | {consume:,.1f} | {median(r) / consume:.1f}x |")
    print(f"\nBatchViews alone on {args.device}: {step_rate['aug']:,.0f} img/s "
          f"({median(times['aug']) * 1e3:.1f} ms per batch of {batch_size}, 2 views)")

    # 3. End to end: the loader feeding the step (the number a training run sees).
    e2e: dict[tuple[str, int], list[float]] = {}
    loaders = {(k, w): make_loader(shards, tf, batch_size, w, pin=cuda)
               for w in workers for k, tf in (("workers", views_cpu), ("device", decode))}
    for _ in range(args.repeats if cuda else 1):  # CPU: one pass, the step dominates the run time
        for (kind, w), loader in loaders.items():
            e2e.setdefault((kind, w), []).append(end_to_end(loader, step, views_dev if kind == "device" else None, steps))
    print("\n| pipeline | workers | end-to-end img/s | vs step alone |")
    print("|---|---:|---:|---:|")
    for (kind, w), r in e2e.items():
        alone = step_rate["step"] if kind == "workers" else step_rate["aug+step"]
        print(f"| {kind} | {w} | {median(r):,.1f} | {median(r) / alone:.2f} |")
    for w in workers:
        ratio = median(e2e[("device", w)]) / median(e2e[("workers", w)])
        print(f"device / worker augmentation, end to end, {w} workers: {ratio:.2f}x")
    if args.json:
        save_json(args.json, {
            "label": label,
            "loader": {f"{k} {w}w": median(r) for (k, w), r in rates.items()},
            "step": step_rate,
            "end_to_end": {f"{k} {w}w": median(r) for (k, w), r in e2e.items()},
        })


if __name__ == "__main__":
    main()
