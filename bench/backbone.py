"""Backbone throughput: ViT training-step FLOP/s vs the machine's measured GEMM peak, variable-length
strategy (pack vs pad), and an I-JEPA step with vs without token dropping.

Everything is measured in the same run (medians over repeats), so the ratios are comparable even on a
shared machine. Usage::

    python bench/backbone.py                 # CPU at what precision: auto picks (fp32 without AMX/AVX512-BF16)
    python bench/backbone.py --precisions fp32 bf16 --skip varlen ijepa   # both, side by side
    python bench/backbone.py --device cuda   # bf16 autocast, flash SDPA, MFU vs 790 TFLOP/s (H200)

Each precision's ViT step is set against the GEMM rate *of that precision* measured interleaved with it
(fp32 GEMM for the fp32 step, bf16 GEMM for the bf16-autocast step). The optimizer is fused AdamW,
as sslkit's objectives build it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from sslkit.backbones import IJEPAPredictor, create_backbone  # noqa: E402
from sslkit.distributed.precision import resolve_precision  # noqa: E402

H200_BF16_DENSE_FLOPS = 790e12  # vendor dense bf16 figure the issue asks MFU against


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved_medians(fns: dict[str, Callable[[], object]], device: str, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall seconds per call of each function, timed round-robin.

    Round-robin pairs every measurement with its neighbours in time, so a background job that
    slows the machine for a while slows all contenders alike and ratios stay meaningful. The
    process CPU seconds (CPU only) are stored under ``"<key>/cpu"``: on a shared machine they
    count only the time this process actually ran.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            times[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    out = {k: statistics.median(v) for k, v in times.items()}
    out.update({f"{k}/cpu": statistics.median(v) for k, v in cpu.items()})
    return out


def gemm_probe(device: str, dtype: torch.dtype) -> tuple[Callable[[], object], int]:
    """A large square matmul and its FLOPs: the machine's practical peak."""
    n = 2048 if device == "cpu" else 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return (lambda: a @ b), 2 * n**3


def gemm_peak(device: str, dtype: torch.dtype, repeats: int, emulated: bool = False) -> float:
    """Best median FLOP/s over square matmul sizes (small ones only where ``dtype`` is emulated: slow)."""
    best = 0.0
    sizes = (1024, 2048, 3072) if device == "cpu" else (4096, 8192, 16384)
    for n in ((256, 512, 1024) if emulated else sizes):
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        t = interleaved_medians({"gemm": lambda: a @ b}, device, repeats)["gemm"]
        rate = 2 * n**3 / t
        print(f"  gemm {n}x{n}x{n} {dtype}: {rate / 1e9:9.1f} GFLOP/s")
        best = max(best, rate)
    return best


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def vit_step(name: str, batch_size: int, device: str, amp: bool, repeats: int, peak: float,
             **kw: object) -> tuple[float, float]:
    """Print one ViT training step's rate vs the GEMM rate; return (median step s, first step s)."""
    model = create_backbone(name, **kw).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn(batch_size, 3, 224, 224, device=device)

    def fwd_bwd() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = model(x).float().square().mean()
        loss.backward()

    def step() -> None:
        fwd_bwd()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    step()  # first call: compiles when kw has compile=True
    first = time.perf_counter() - t0
    flops = count_flops(fwd_bwd)
    opt.zero_grad(set_to_none=True)
    gemm, gemm_flops = gemm_probe(device, torch.bfloat16 if amp else torch.float32)
    t = interleaved_medians({"step": step, "gemm": gemm}, device, repeats)
    rate, gemm_rate = flops / t["step"], gemm_flops / t["gemm"]
    line = (
        f"  {name:22s} {'bf16' if amp else 'fp32'} {str(kw):18s} B={batch_size:3d} {batch_size / t['step']:7.1f} img/s {flops / 1e9:6.1f} GFLOP/step"
        f" {rate / 1e9:7.1f} GFLOP/s = {100 * rate / gemm_rate:5.1f}% of interleaved GEMM ({gemm_rate / 1e9:.1f})"
        f", {100 * rate / peak:5.1f}% of best GEMM"
    )
    if device == "cpu":  # per CPU-second: immune to time slices lost to other processes
        cpu_frac = (flops / t["step/cpu"]) / (gemm_flops / t["gemm/cpu"])
        line += f"; per CPU-second {flops / t['step/cpu'] / 1e9:.1f} GFLOP/s = {100 * cpu_frac:5.1f}% of GEMM"
    if device == "cuda":
        line += f"  MFU {100 * rate / H200_BF16_DENSE_FLOPS:5.1f}% of 790 TFLOP/s"
    if kw.get("compile"):  # compile time amortised: steps after which compiling has paid for itself
        line += f"; first step {first:.1f} s (compile included)"
    print(line)
    return t["step"], first


def ijepa_masks(batch_size: int, grid: int, gen: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """I-JEPA multi-block masks (4 targets of scale 0.15-0.2, context block 0.85-1.0 minus targets).

    Unlike I-JEPA's collator, context counts are *not* truncated to the batch minimum: they vary
    per sample, which is what the variable-length paths are for.
    """

    def block(scale: tuple[float, float], aspect: tuple[float, float]) -> torch.Tensor:
        s = scale[0] + (scale[1] - scale[0]) * torch.rand(1, generator=gen).item()
        a = aspect[0] + (aspect[1] - aspect[0]) * torch.rand(1, generator=gen).item()
        h = max(1, min(grid, round((s * grid * grid * a) ** 0.5)))
        w = max(1, min(grid, round((s * grid * grid / a) ** 0.5)))
        top = int(torch.randint(0, grid - h + 1, (1,), generator=gen))
        left = int(torch.randint(0, grid - w + 1, (1,), generator=gen))
        m = torch.zeros(grid, grid, dtype=torch.bool)
        m[top : top + h, left : left + w] = True
        return m.flatten()

    contexts, targets = [], []
    for _ in range(batch_size):
        tgt = [block((0.15, 0.2), (0.75, 1.5)) for _ in range(4)]
        ctx = block((0.85, 1.0), (1.0, 1.0)) & ~torch.stack(tgt).any(0)
        contexts.append(ctx.nonzero().squeeze(1))
        targets.append(torch.stack([t.nonzero().squeeze(1)[: min(int(u.sum()) for u in tgt)] for t in tgt]))
    return contexts, targets


def pad_stack(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(r) for r in rows])
    out = torch.zeros(len(rows), int(lens.max()), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, lens


def ijepa_bench(name: str, batch_size: int, device: str, amp: bool, repeats: int) -> None:
    grid = 14
    gen = torch.Generator().manual_seed(0)
    contexts, targets = ijepa_masks(batch_size, grid, gen)
    context, context_lens = pad_stack(contexts)
    # I-JEPA's 4 targets per image share one size per image; pad across the batch.
    t_rows = [t[m] for t in targets for m in range(4)]  # image-major (B * 4 rows)
    target, target_lens = pad_stack(t_rows)
    context, context_lens, target, target_lens = (t.to(device) for t in (context, context_lens, target, target_lens))
    print(
        f"  context keep counts: mean {context_lens.float().mean():.1f}, min {int(context_lens.min())},"
        f" max {int(context_lens.max())} of {grid * grid}; target rows {len(t_rows)} x <= {target.shape[1]}"
    )
    x = torch.randn(batch_size, 3, 224, 224, device=device)
    steps: dict[str, Callable[[], None]] = {}
    outs: dict[str, torch.Tensor] = {}
    for mode in ("no-drop", "drop-pad", "drop-pack"):
        steps[mode] = _ijepa_step(name, mode, x, grid, context, context_lens, target, target_lens, device, amp, outs)
    flops = {mode: count_flops(step) for mode, step in steps.items()}
    results = interleaved_medians(steps, device, repeats)
    for mode in steps:
        t, c = results[mode], results[f"{mode}/cpu"]
        print(
            f"  {mode:9s} step {1e3 * t:8.1f} ms wall ({1e3 * c:8.1f} ms CPU)  {batch_size / t:7.1f} img/s"
            f"  {flops[mode] / 1e9:6.1f} GFLOP"
        )
    diff = (outs["no-drop"] - outs["drop-pack"]).abs().max().item()
    print(f"  max |context tokens no-drop - drop| = {diff:.2e} (same computation, different cost)")
    print(
        f"  speedup token dropping (wall): pack {results['no-drop'] / results['drop-pack']:.2f}x,"
        f" pad {results['no-drop'] / results['drop-pad']:.2f}x; pack vs pad {results['drop-pad'] / results['drop-pack']:.2f}x"
    )
    print(
        f"  FLOP ratio no-drop / drop = {flops['no-drop'] / flops['drop-pack']:.2f}x: the ceiling, since the EMA"
        " target encoder (all tokens) and the predictor cost the same either way"
    )
    if device == "cpu":
        r = {k[:-4]: v for k, v in results.items() if k.endswith("/cpu")}
        print(
            f"  speedup token dropping (CPU s): pack {r['no-drop'] / r['drop-pack']:.2f}x,"
            f" pad {r['no-drop'] / r['drop-pad']:.2f}x; pack vs pad {r['drop-pad'] / r['drop-pack']:.2f}x"
        )


def _ijepa_step(
    name: str, mode: str, x: torch.Tensor, grid: int, context: torch.Tensor, context_lens: torch.Tensor,
    target: torch.Tensor, target_lens: torch.Tensor, device: str, amp: bool, outs: dict[str, torch.Tensor],
) -> Callable[[], None]:
    """One I-JEPA training step: EMA target on all tokens, context encoder, predictor, loss, AdamW, EMA."""
    batch_size = x.shape[0]
    torch.manual_seed(0)
    varlen = "pad" if mode == "drop-pad" else "pack"
    encoder = create_backbone(name, class_token=False, global_pool="avg", varlen=varlen).to(device)
    target_encoder = copy.deepcopy(encoder).requires_grad_(False)
    predictor = IJEPAPredictor(grid * grid, encoder.embed_dim, 192, depth=4, num_heads=6, varlen=varlen).to(device)
    params = list(encoder.parameters()) + list(predictor.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True)

    def context_tokens() -> torch.Tensor:
        if mode != "no-drop":
            return encoder.forward_features(x, keep=context, keep_lens=context_lens)
        # Same outputs without dropping: all tokens run, non-context tokens hidden as keys.
        visible = torch.zeros(batch_size, grid * grid, dtype=torch.bool, device=device)
        valid = torch.arange(context.shape[1], device=device) < context_lens.unsqueeze(1)
        rows = torch.arange(batch_size, device=device).unsqueeze(1).expand_as(context)
        visible[rows[valid], context[valid]] = True
        full = encoder.forward_features(x, attn_mask=visible.view(batch_size, 1, 1, -1))
        z = full.gather(1, context.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
        return z * valid.unsqueeze(-1)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            with torch.no_grad():
                h = F.layer_norm(target_encoder.forward_features(x), (encoder.embed_dim,))
                h = h.repeat_interleave(4, 0).gather(1, target.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
            z = context_tokens()
            outs.setdefault(mode, z.detach())  # first step: all modes share weights
            p = predictor(z, context, target, context_lens, target_lens)  # 4 target blocks, image-major
            valid = (torch.arange(target.shape[1], device=device) < target_lens.unsqueeze(1)).unsqueeze(-1)
            loss = (F.smooth_l1_loss(p.float(), h.float(), reduction="none") * valid).sum() / valid.sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_lerp_(list(target_encoder.parameters()), list(encoder.parameters()), 0.004)

    return step


def varlen_bench(name: str, batch_size: int, device: str, amp: bool, repeats: int) -> None:
    """Encoder fwd+bwd on per-sample keep counts: pack vs pad, across keep-count spreads."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch_size, 3, 224, 224, device=device)
    for lo, hi in ((90, 110), (40, 160), (10, 196)):
        lens = torch.randint(lo, hi + 1, (batch_size,), generator=gen)
        keep = torch.stack([torch.randperm(196, generator=gen) for _ in range(batch_size)])[:, : int(lens.max())]
        keep, lens = keep.to(device), lens.to(device)
        fns = {varlen: _encoder_fwd_bwd(name, varlen, x, keep, lens, device, amp) for varlen in ("pad", "pack")}
        times = interleaved_medians(fns, device, repeats)
        print(
            f"  keep {lo:3d}-{hi:3d} (mean {lens.float().mean():5.1f}, max {int(lens.max())}):"
            f" pad {1e3 * times['pad']:7.1f} ms  pack {1e3 * times['pack']:7.1f} ms"
            f"  pack speedup {times['pad'] / times['pack']:.2f}x"
            + (f" (CPU s: {times['pad/cpu'] / times['pack/cpu']:.2f}x)" if device == "cpu" else "")
        )


def _encoder_fwd_bwd(
    name: str, varlen: str, x: torch.Tensor, keep: torch.Tensor, lens: torch.Tensor, device: str, amp: bool
) -> Callable[[], None]:
    model = create_backbone(name, varlen=varlen).to(device)

    def fwd_bwd() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            out = model.forward_features(x, keep=keep, keep_lens=lens)
        out.float().square().mean().backward()
        model.zero_grad(set_to_none=True)

    return fwd_bwd


def adamw_bench(device: str, repeats: int) -> None:
    """AdamW step over ViT-Tiny/4's parameters: per-tensor loop vs foreach vs fused (sslkit's default)."""
    import timm

    model = timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=32, patch_size=4)
    steps = {}
    for mode, kw in (("loop", {"foreach": False}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        params = [p.detach().clone().to(device).requires_grad_() for p in model.parameters()]
        for p in params:
            p.grad = torch.randn_like(p)
        steps[mode] = torch.optim.AdamW(params, lr=1e-3, **kw).step
    t = interleaved_medians(steps, device, repeats)
    numel = sum(p.numel() for p in model.parameters())
    print(f"  {numel / 1e6:.2f} M params: " + ", ".join(f"{k} {1e3 * t[k]:.1f} ms" for k in steps)
          + f"; fused {t['loop'] / t['fused']:.2f}x the loop")


def compile_bench(device: str, repeats: int) -> None:
    """Eager vs compiled backbone training step for each family the CIFAR recipes use (32 px, batch 64)."""
    x = torch.randn(64, 3, 32, 32, device=device)
    for name, kw in (("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4}), ("resnet18_cifar", {})):
        models = {"eager": create_backbone(name, **kw).to(device)}
        models["compiled"] = create_backbone(name, compile=True, **kw).to(device)
        models["compiled"].load_state_dict(models["eager"].state_dict())
        opts = {k: torch.optim.AdamW(m.parameters(), fused=True) for k, m in models.items()}

        def step(k: str) -> None:
            models[k](x).square().mean().backward()
            opts[k].step()
            opts[k].zero_grad(set_to_none=True)

        first = {}
        for k in models:
            t0 = time.perf_counter()
            step(k)
            first[k] = time.perf_counter() - t0
        t = interleaved_medians({k: (lambda k=k: step(k)) for k in models}, device, repeats, warmup=0)
        gain = t["eager"] - t["compiled"]
        print(f"  {name:22s} eager {1e3 * t['eager']:7.1f} ms  compiled {1e3 * t['compiled']:7.1f} ms"
              f"  {t['eager'] / t['compiled']:.2f}x; first step {first['compiled']:.1f} s compiled vs"
              f" {first['eager']:.1f} s eager: "
              + (f"pays off after {(first['compiled'] - first['eager']) / gain:.0f} steps" if gain > 0
                 else "never pays off"))


def vit_section(args: argparse.Namespace, precisions: list[str], peaks: dict[str, float]) -> None:
    """ViT steps per precision (and compiled blocks with ``--compile``: the compile time amortised)."""
    specs = [("vit_tiny_patch16_224", 16), ("vit_small_patch16_224", 8)]
    if args.device == "cuda":
        specs = [("vit_tiny_patch16_224", 512), ("vit_small_patch16_224", 256), ("vit_base_patch16_224", 256)]
    for name, bs in specs:
        for prec in precisions:
            amp = prec == "bf16"
            eager, _ = vit_step(name, bs, args.device, amp, args.repeats, peaks[prec])
            if args.compile:
                compiled, first = vit_step(name, bs, args.device, amp, args.repeats, peaks[prec], compile=True)
                gain = eager - compiled
                print(f"    compiled blocks: {eager / compiled:.2f}x per step; "
                      + (f"compile pays off after {(first - compiled) / gain:.0f} steps" if gain > 0
                         else "compile never pays off"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "bf16"],
                        help="default: what precision: auto resolves to on this machine")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd blocks")
    parser.add_argument("--skip", nargs="*", default=[], choices=["vit", "varlen", "ijepa", "adamw", "compile"])
    args = parser.parse_args()
    device = args.device
    resolved, why = resolve_precision("auto", device)
    precisions = args.precisions or (["bf16"] if resolved == "bf16-mixed" else ["fp32"])
    amp = precisions[0] == "bf16"  # the varlen / I-JEPA sections run at the first precision
    torch.set_num_threads(args.threads)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    print(f"# bench/backbone.py  device={device}  precisions={precisions} (auto -> {resolved}: {why})"
          f"  threads={torch.get_num_threads()}  torch {torch.__version__}"
          f"  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    peaks = {}
    for prec in precisions:
        print(f"GEMM peak ({prec}):")
        emulated = prec == "bf16" and resolved != "bf16-mixed"
        peaks[prec] = gemm_peak(device, torch.bfloat16 if prec == "bf16" else torch.float32, args.repeats, emulated)
        print(f"  measured peak: {peaks[prec] / 1e9:.1f} GFLOP/s")
    if "vit" not in args.skip:
        print("ViT training step (fwd + bwd + fused AdamW), 224 px:")
        vit_section(args, precisions, peaks)
    if "adamw" not in args.skip:
        print("AdamW step (5.4 M parameters):")
        adamw_bench(device, max(args.repeats, 5))
    if "compile" not in args.skip:
        print("Compiled backbone blocks (fp32), training step at 32 px, batch 64:")
        compile_bench(device, args.repeats)
    bs = 8 if device == "cpu" else 256
    if "varlen" not in args.skip:
        print(f"Variable keep counts, vit_small_patch16_224 encoder fwd+bwd, B={bs}:")
        varlen_bench("vit_small_patch16_224", bs, device, amp, args.repeats)
    if "ijepa" not in args.skip:
        print(f"I-JEPA step (vit_small_patch16_224 encoder + EMA target + 4-block predictor), B={bs}:")
        ijepa_bench("vit_small_patch16_224", bs, device, amp, args.repeats)


if __name__ == "__main__":
    main()
