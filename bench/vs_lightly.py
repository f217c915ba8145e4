"""sslkit's training step vs lightly's reference step, in one process, on the same data, batch,
backbone architecture and optimizer, alternating repeats; prints median img/s and the ratio.

The lightly side is built from lightly's own modules as its examples do (``examples/pytorch/simclr.py``,
``byol.py``, ``ijepa.py``; I-JEPA with lightly 1.6's ``MaskedVisionTransformerTIMM`` +
``IJEPAPredictorTIMM`` and ``IJEPAMaskCollator``), on timm's ViT. The sslkit side is the objective's
own ``training_step`` (``sslkit.objectives.SimCLR`` / ``BYOL`` / ``IJEPA``) with sslkit's backbone,
and for I-JEPA sslkit's ``MultiBlockMaskCollator``: each library masks as its users would run it,
with the same block scales, aspect ratios and number of targets. Both sides: AdamW, same lr. Steps
alternate between all contenders so machine load hits them alike.

Each precision side by side (``--precisions``):

- ``default``: sslkit as a recipe runs it (``precision: auto`` resolved for this machine: bf16 autocast
  where bf16 matmuls are native, else fp32; fused AdamW; ``--compile``: compiled backbone blocks)
  vs lightly's reference as its examples run it (fp32, ``torch.optim.AdamW`` defaults);
- ``bf16``: both under the same bf16 autocast (sslkit keeps its fp32 loss islands and fused AdamW).

``bf16`` is skipped where bf16 is emulated (no AMX/AVX-512-BF16 CPU, no bf16 GPU) unless asked for.

Usage::

    python bench/vs_lightly.py                       # CPU, ViT-Tiny/4 at 32 px on CIFAR-10, batch 64
    python bench/vs_lightly.py --device cuda --batch-size 256
    python bench/vs_lightly.py --methods ijepa --profile   # torch.profiler table per side
    python bench/vs_lightly.py --methods simclr byol ijepa --precisions default bf16 --compile
"""

from __future__ import annotations

import argparse
import copy
import itertools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from common import alternate, machine, median, save_json, stub_trainer  # noqa: I001  (bench/ is on sys.path)
from sslkit.data import ShardLoader, ShardStream
from sslkit.distributed.precision import resolve_precision
from sslkit.optim import build_optimizer, param_groups
from sslkit.transforms import BYOLViews, MaskedImageViews, SimCLRViews

CIFAR = dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
VIT = dict(img_size=32, patch_size=4)  # ViT-Tiny with 4-px patches: 64 tokens at 32 px (the recipes')
LR = 5e-4


def real_batch(shards: str, transform: Callable, batch_size: int, collate_fn: Callable | None = None) -> dict[str, Any]:
    stream = ShardStream(shards, batch_size=batch_size, transform=transform, collate_fn=collate_fn, shuffle=True)
    return next(iter(ShardLoader(stream, num_workers=0)))


def timm_vit(vit: dict[str, Any] | None = None, **kw: Any) -> nn.Module:
    import timm

    return timm.create_model("vit_tiny_patch16_224", num_classes=0, **(VIT if vit is None else vit), **kw)


# -- lightly references (as lightly's examples) ----------------------------------------------------
class LightlySimCLR(nn.Module):
    """``examples/pytorch/simclr.py``: backbone + ``SimCLRProjectionHead``, ``NTXentLoss``, one pass per view."""

    def __init__(self, vit: dict[str, Any] | None = None) -> None:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__()
        self.backbone = timm_vit(vit)
        self.projection_head = SimCLRProjectionHead(self.backbone.num_features, 1024, 128)
        self.criterion = NTXentLoss(temperature=0.2)

    def step(self, batch: dict[str, Any]) -> torch.Tensor:
        x0, x1 = batch["views"]
        z0 = self.projection_head(self.backbone(x0).flatten(start_dim=1))
        z1 = self.projection_head(self.backbone(x1).flatten(start_dim=1))
        return self.criterion(z0, z1)


class LightlyBYOL(nn.Module):
    """``examples/pytorch/byol.py``: momentum copies, ``update_momentum``, ``NegativeCosineSimilarity``."""

    def __init__(self) -> None:
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        self.backbone = timm_vit()
        self.projection_head = BYOLProjectionHead(192, 4096, 256)
        self.prediction_head = BYOLPredictionHead(256, 4096, 256)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()

    def step(self, batch: dict[str, Any]) -> torch.Tensor:
        from lightly.models.utils import update_momentum

        update_momentum(self.backbone, self.backbone_momentum, m=0.99)
        update_momentum(self.projection_head, self.projection_head_momentum, m=0.99)
        x0, x1 = batch["views"]
        p0, z0 = self(x0), self.forward_momentum(x0)
        p1, z1 = self(x1), self.forward_momentum(x1)
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))


class LightlyIJEPA(nn.Module):
    """``examples/pytorch/ijepa.py`` on lightly 1.6's timm modules: masked-ViT context encoder, predictor
    over ``npred`` target blocks, layer-normed EMA-target features, smooth L1."""

    def __init__(self, vit_kw: dict[str, Any] | None = None, predictor_depth: int = 6) -> None:
        from lightly.models.modules import IJEPAPredictorTIMM, MaskedVisionTransformerTIMM

        super().__init__()
        vit = timm_vit(vit_kw, class_token=False, global_pool="avg")
        self.encoder = MaskedVisionTransformerTIMM(vit=vit)
        self.predictor = IJEPAPredictorTIMM(num_patches=vit.patch_embed.num_patches, depth=predictor_depth,
                                            mlp_dim=vit.num_features, predictor_embed_dim=96, num_heads=3)
        self.target_encoder = copy.deepcopy(self.encoder)
        for p in self.target_encoder.parameters():
            p.requires_grad_(False)
        self.criterion = nn.SmoothL1Loss()

    def step(self, batch: dict[str, Any]) -> torch.Tensor:
        from lightly.models import utils

        imgs, masks_enc, masks_pred = batch["views"][0], batch["lightly_masks_enc"], batch["lightly_masks_pred"]
        with torch.no_grad():
            h = self.target_encoder.encode(imgs)
            h = F.layer_norm(h, (h.size(-1),))
            h = utils.apply_masks(h, masks_pred)
            h = utils.repeat_interleave_batch(h, len(imgs), repeat=len(masks_enc))
        z = torch.cat([self.encoder.encode(imgs, idx_keep=m) for m in masks_enc])
        z = self.predictor(z, masks_enc, masks_pred)
        loss = self.criterion(z, h)
        with torch.no_grad():  # update_target_encoder() of the example, after the optimizer step in spirit
            for q, k in zip(self.encoder.parameters(), self.target_encoder.parameters()):
                k.data.mul_(0.996).add_((1.0 - 0.996) * q.detach().data)
        return loss


# -- the two sides ---------------------------------------------------------------------------------
def build(method: str, shards: str, batch_size: int, device: str,
          compile: bool = False) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """(sslkit objective, lightly reference, batch on device)."""
    from sslkit.objectives import BYOL, SimCLR

    vit = {**VIT, "compile": True} if compile else VIT
    if method == "simclr":
        ours = SimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs=vit, proj_hidden_dim=1024, proj_output_dim=128,
                      temperature=0.2, gather_distributed=False)
        ref, batch = LightlySimCLR(), real_batch(shards, SimCLRViews(32, min_scale=0.2, cj_strength=0.5, blur_prob=0.0, **CIFAR), batch_size)
    elif method == "byol":
        ours = BYOL(backbone="vit_tiny_patch16_224", backbone_kwargs=vit, proj_hidden_dim=4096, proj_output_dim=256,
                    ema_momentum=0.99)
        ref, batch = LightlyBYOL(), real_batch(shards, BYOLViews(32, cj_strength=0.5, blur_probs=(0.0, 0.0), **CIFAR), batch_size)
    elif method in ("ijepa", "ijepa-truncate", "ijepa-same-masks"):
        from lightly.data.ijepa_collate import IJEPAMaskCollator

        from sslkit.masking import MultiBlockMaskCollator
        from sslkit.objectives import IJEPA

        ours = IJEPA(backbone="vit_tiny_patch16_224",
                     backbone_kwargs={**vit, "class_token": False, "global_pool": "avg", "sincos_pos_embed": True},
                     predictor_embed_dim=96, predictor_depth=6, predictor_num_heads=3)
        ref = LightlyIJEPA()
        masks = dict(target_scale=(0.15, 0.2), target_aspect_ratio=(0.75, 1.5), context_scale=(0.85, 1.0), min_keep=4)
        context = "truncate" if method == "ijepa-truncate" else "all"  # truncate: the authors' policy, sslkit's sampler
        collator = MultiBlockMaskCollator(input_size=32, patch_size=4, num_targets=4, context=context, **masks)
        batch = real_batch(shards, MaskedImageViews(32, min_scale=0.3, **CIFAR), batch_size, collator)
        lightly_collator = IJEPAMaskCollator(input_size=32, patch_size=4, enc_mask_scale=(0.85, 1.0),
                                             pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5), nenc=1, npred=4,
                                             min_keep=4)
        _, enc, pred = lightly_collator([(x,) for x in batch["views"][0]])
        batch["lightly_masks_enc"], batch["lightly_masks_pred"] = enc, pred
        ctx = batch.get("masks_context_lens")
        kc = float(ctx.float().mean()) if ctx is not None else batch["masks_context"].shape[1]
        print(f"  context tokens per image: sslkit {kc:.1f} ({context}), lightly {enc[0].shape[1]} "
              f"(truncated to the batch minimum); target tokens per block: sslkit {batch['masks_target'].shape[2]}, "
              f"lightly {pred[0].shape[1]}")
        if method == "ijepa-same-masks":  # equal work: sslkit runs lightly's (truncated) masks
            batch.pop("masks_context_lens", None)
            batch["masks_context"], batch["masks_target"] = enc[0], torch.stack(pred, dim=1)  # (B, Kc), (B, M, Kt)
            print("  sslkit runs lightly's masks")
    else:
        raise ValueError(method)
    batch = {k: (v.to(device) if torch.is_tensor(v) else [t.to(device) if torch.is_tensor(t) else t for t in v]
                 if isinstance(v, list) else v) for k, v in batch.items()}
    return ours.to(device), ref.to(device), batch


def make_step(model: nn.Module, loss_fn: Callable[[dict[str, Any]], torch.Tensor], device: str,
              amp: bool, sslkit: bool = True, lr: float = LR) -> Callable[[dict[str, Any]], None]:
    """One training step: sslkit's optimizer as its objectives build it (fused AdamW, no decay on norms and
    biases), lightly's as its examples do (``torch.optim.AdamW`` over all trainable parameters)."""
    if sslkit:
        opt = build_optimizer("adamw", param_groups(model.trainable_modules(), 0.05), lr=lr)
    else:
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.05)

    def step(batch: dict[str, Any]) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def profile(name: str, fn: Callable[[], None], rows: int = 12) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch_profile(activities=activities) as prof:
        fn()
    print(f"\n--- profile: {name} (self time, top {rows}) ---")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40))


def contenders(method: str, args: argparse.Namespace, default_amp: bool) -> dict[str, Callable[[], None]]:
    """The alternating contenders of one method: ``sslkit <precision>`` and ``lightly <precision>`` steps.

    A fresh pair of models per precision (an optimizer owns its parameters), all on the first pair's batch.
    """
    sides: dict[str, Callable[[], None]] = {}
    batch = None
    for prec in args.precisions:
        if prec == "bf16" and default_amp and "default" in args.precisions:
            continue  # sslkit's default at bf16 *is* its bf16 row
        torch.manual_seed(0)
        ours, ref, fresh = build(method, args.shards, args.batch_size, args.device, args.compile)
        batch = fresh if batch is None else batch
        ours.trainer = stub_trainer()
        ours.train(), ref.train()
        amp = default_amp if prec == "default" else True
        step_o = make_step(ours, lambda b, m=ours: m.training_step(b, 0), args.device, amp, sslkit=True)
        step_l = make_step(ref, ref.step, args.device, prec == "bf16", sslkit=False)
        sides[f"sslkit {prec}"] = lambda s=step_o: s(batch)
        sides[f"lightly {'bf16' if prec == 'bf16' else 'fp32'}"] = lambda s=step_l: s(batch)
    return sides


def ratios(rate: dict[str, float], default_amp: bool) -> dict[str, float]:
    """sslkit default / lightly fp32 (as shipped), sslkit bf16 / lightly bf16 (same autocast)."""
    out = {}
    if "sslkit default" in rate:
        out["default_vs_lightly_fp32"] = rate["sslkit default"] / rate["lightly fp32"]
    if "lightly bf16" in rate:
        ours = rate.get("sslkit bf16", rate.get("sslkit default") if default_amp else None)
        if ours is not None:
            out["bf16_vs_lightly_bf16"] = ours / rate["lightly bf16"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--shards", default="/tmp/shards/cifar10-train")
    p.add_argument("--methods", nargs="+", default=["simclr", "byol", "ijepa", "ijepa-truncate", "ijepa-same-masks"],
                   help="ijepa-truncate: sslkit's collator with context='truncate' (the authors' policy); "
                        "ijepa-same-masks: sslkit's step on lightly's masks (equal token counts)")
    p.add_argument("--precisions", nargs="+", default=None, choices=["default", "bf16"],
                   help="default: sslkit's resolved precision: auto vs lightly fp32; bf16: both under bf16 autocast "
                        "(default: both where bf16 is native, else default only)")
    p.add_argument("--compile", action="store_true", help="sslkit side with torch.compile'd backbone blocks")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="print a torch.profiler table of one step per side")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU (1: stable on a shared machine)")
    p.add_argument("--json", default=None, help="also write the figures here (for bench/common.py --chart)")
    args = p.parse_args()
    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    resolved, why = resolve_precision("auto", args.device)
    default_amp = resolved == "bf16-mixed"
    if args.precisions is None:
        args.precisions = ["default", "bf16"] if default_amp else ["default"]
    print(f"machine: {machine()}")
    print(f"sslkit default: precision auto -> {resolved} ({why}); fused AdamW"
          f"{'; compiled blocks' if args.compile else ''}")
    print(f"batch {args.batch_size}, {args.repeats} alternating repeats after 1 warm-up, medians; AdamW lr {LR}\n")
    results: dict[str, dict[str, float]] = {}
    for method in args.methods:
        print(f"{method}:")
        sides = contenders(method, args, default_amp)
        times = alternate(sides, args.repeats, args.device)
        rate = {k: args.batch_size / median(v) for k, v in times.items()}
        results[method] = {**rate, **ratios(rate, default_amp)}
        for k, v in times.items():
            print(f"  {k:15s} {rate[k]:7.1f} img/s  (per-rep s: {', '.join(f'{t:.2f}' for t in v)})")
        print("  " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios(rate, default_amp).items()))
        if args.profile:
            for k, fn in sides.items():
                profile(f"{method} {k}", fn)
        del sides
    names = sorted({k for r in results.values() for k in r if " " in k})
    header = " | ".join(f"{n} img/s" for n in names)
    print(f"\n| method | {header} | default / lightly fp32 | bf16 / lightly bf16 |")
    print("|---|" + "---:|" * (len(names) + 2))
    for method, r in results.items():
        cells = [f"{r[n]:.1f}" if n in r else "" for n in names]
        cells += [f"{r[k]:.2f}x" if k in r else "" for k in ("default_vs_lightly_fp32", "bf16_vs_lightly_bf16")]
        print(f"| {method} | " + " | ".join(cells) + " |")
    if args.json:
        save_json(args.json, results)


if __name__ == "__main__":
    main()
