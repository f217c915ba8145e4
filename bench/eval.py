"""Evaluation benchmarks (CPU, one run): kNN vs the GEMM compute bound and a torch feature bank;
the LR-grid linear probe vs one extraction pass over the same images.

    python bench/eval.py [--bank 50000 --queries 4000 --dim 512 --k 200] [--probe-images 4096] [--threads 1]

Prints the CPU and the BLAS kernels every library runs, then a markdown block for docs/benchmarks.md
(section "Evaluation"). Every contender and the GEMM bound run at the same thread count: torch's threads,
FAISS's OpenMP and every BLAS pool threadpoolctl can limit (numpy's OpenBLAS ignores torch's setting).
Each kNN row is the median of its calls, and its ratio the median of per-call ratios to the GEMM bound
measured just before and after that call (`paired`): the machine's rate drifts between minutes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from common import repeat_times, timed  # noqa: I001  (bench/ is on sys.path)
from sslkit.hardware import cpu_has_native_bf16
from sslkit.evaluation.blas import describe_blas
from sslkit.evaluation.features import Pooling, extract_features
from sslkit.evaluation.knn import IndexSpec, build_index, knn_classify, l2_normalize
from sslkit.evaluation.linear_probe import DEFAULT_LRS, DEFAULT_WDS, linear_probe
from sslkit.evaluation.search import bf16_search, faiss_flat_search, gemm_topk, resolve_engine


def best(fn, repeats: int = 5) -> float:
    return min(repeat_times(fn, repeats))


def gemm_peak(dim: int, repeats: int = 7) -> tuple[float, Callable[[], object], float]:
    """The fastest float32 GEMM at the current thread limits: torch (MKL) and numpy (OpenBLAS), FAISS's
    block shape (4096 queries x 4096 bank) and a wider one, fastest of ``repeats``.

    Returns ``(FLOP/s, that GEMM as a call, its FLOPs)``: :func:`paired` reruns it around every contender.
    """
    found = []
    for cols in (4096, 8192):
        a, b, c = torch.randn(4096, dim), torch.randn(dim, cols), torch.empty(4096, cols)
        # Into a reused output: a fresh 128 MB result would time the kernel's page faults, not the GEMM.
        for fn in (lambda a=a, b=b, c=c: torch.matmul(a, b, out=c),
                   lambda a=a.numpy(), b=b.numpy(), c=c.numpy(): np.matmul(a, b, out=c)):
            flops = 2.0 * 4096 * cols * dim
            found.append((flops / best(fn, repeats), fn, flops))
    return max(found, key=lambda f: f[0])


def paired(fn: Callable[[], object], bound: tuple[float, Callable[[], object], float], flops: float,
           repeats: int) -> dict[str, float]:
    """``fn`` timed ``repeats`` times, each call between two runs of the bound's GEMM.

    The machine's rate drifts by 10-20 % between minutes here (a VM: neighbours share caches and memory),
    so each call is compared with the GEMM rate measured around it (the faster of the two): the ratio
    is the median of these paired ratios, not one minimum against another taken minutes apart.
    """
    _, gemm, gemm_flops = bound
    fn()
    times, bounds = [], []
    for _ in range(repeats):
        before = timed(gemm)
        times.append(timed(fn))
        bounds.append(flops * min(before, timed(gemm)) / gemm_flops)
    ratios = [t / b for t, b in zip(times, bounds)]
    return {"s": statistics.median(times), "ratio": statistics.median(ratios), "bound_s": statistics.median(bounds),
            "calls_s": times, "ratios": ratios}


def torch_bank_knn(bank: torch.Tensor, queries: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """The usual torch feature bank (DINO / solo-learn): chunked matmul + topk."""
    out = []
    for i in range(0, queries.shape[0], chunk):
        out.append((queries[i : i + chunk] @ bank.T).topk(k, dim=1).indices)
    return torch.cat(out)


def bench_knn(num_bank: int, num_queries: int, dim: int, k: int, bf16: bool) -> dict:
    rng = np.random.default_rng(0)
    bank = l2_normalize(rng.normal(size=(num_bank, dim)).astype(np.float32))
    queries = l2_normalize(rng.normal(size=(num_queries, dim)).astype(np.float32))
    labels, query_labels = rng.integers(0, 100, num_bank), rng.integers(0, 100, num_queries)
    flops = 2.0 * num_bank * num_queries * dim
    index = build_index(bank)
    tb, tq = torch.from_numpy(bank), torch.from_numpy(queries)
    bound = gemm_peak(dim)

    def sweep(**spec: str) -> Callable[[], object]:
        return lambda: knn_classify(bank, labels, queries, query_labels, index=IndexSpec(**spec))

    contenders = {
        "faiss": (lambda: faiss_flat_search(index, queries, k + 1), 5),
        "numpy_heap": (lambda: gemm_topk(bank, queries, k + 1), 5),
        "torch_heap": (lambda: gemm_topk(tb, tq, k + 1), 3),
        "sweep_fp32": (sweep(precision="fp32"), 5),
        # the auto row above is one of these; both, to show the choice
        "sweep_faiss": (sweep(engine="faiss", precision="fp32"), 3),
        "sweep_numpy": (sweep(engine="numpy", precision="fp32"), 3),
    }
    if bf16:
        contenders["bf16"] = (lambda: bf16_search(bank, queries, k + 1), 2)
        contenders["sweep_bf16"] = (sweep(precision="bf16"), 2)
    contenders["torch"] = (lambda: torch_bank_knn(tb, tq, k + 1), 2)
    if num_bank >= 200_000:
        contenders["ivf"] = (lambda: knn_classify(bank, labels, queries, query_labels, ks=(k,),
                                                  index=IndexSpec("ivf", nprobe=16)), 1)
    result = {name: paired(fn, bound, flops, repeats) for name, (fn, repeats) in contenders.items()}
    bound_s = statistics.median(r["bound_s"] for r in result.values())
    return {"rows": result, "flops": flops, "peak": flops / bound_s, "bound_s": bound_s}


def bench_probe(num_images: int, epochs: int, backbone: str) -> dict[str, float]:
    import timm

    model = timm.create_model(backbone, num_classes=0).eval()
    x = torch.randn(num_images, 3, 32, 32)
    y = torch.randint(0, 10, (num_images,))
    loader = [{"image": x[i : i + 256], "label": y[i : i + 256]} for i in range(0, num_images, 256)]
    start = time.perf_counter()
    feats = extract_features(model, loader, Pooling())
    extract_s = time.perf_counter() - start
    start = time.perf_counter()
    result = linear_probe(feats.feats, feats.labels, feats.feats[:1000], feats.labels[:1000],
                          DEFAULT_LRS, DEFAULT_WDS, epochs=epochs, batch_size=1024)
    probe_s = time.perf_counter() - start
    return {"extract_s": extract_s, "probe_s": probe_s, "train_s": result["train_s"],
            "num_heads": len(DEFAULT_LRS) * len(DEFAULT_WDS), "dim": feats.feats.shape[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bank", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=4_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--probe-images", type=int, default=4096)
    parser.add_argument("--probe-epochs", type=int, default=50)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                        help="time the bf16-candidate path (auto: only where bf16 GEMM runs in hardware)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        pools = {d["internal_api"]: d["num_threads"] for d in threadpool_info()}
        assert all(n <= args.threads for n in pools.values()), f"thread pools not limited: {pools}"
        bf16 = args.bf16 == "on" or (args.bf16 == "auto" and cpu_has_native_bf16())
        knn = bench_knn(args.bank, args.queries, args.dim, args.k, bf16)
        probe = bench_probe(args.probe_images, args.probe_epochs, args.backbone)
    g = 1e9
    print(f"machine: {describe_blas()}")
    print(f"kNN engine chosen here: {resolve_engine('auto')}; thread pools: {pools}\n")
    print(f"kNN: bank {args.bank} x {args.dim}, {args.queries} queries, k={args.k}, {args.threads} threads\n")
    print("| what | seconds | vs compute bound |\n|---|---|---|")
    print(f"| compute bound: {knn['flops'] / g:.0f} GFLOP / {knn['peak'] / g:.0f} GFLOP/s measured fp32 GEMM "
          f"| {knn['bound_s']:.2f} | 1.00x |")
    rows = [("FAISS exact search (IndexFlatIP, its bundled BLAS), top-(k+1)", "faiss"),
            ("numpy GEMM (its OpenBLAS) + FAISS heaps, top-(k+1)", "numpy_heap"),
            ("torch GEMM (MKL) + FAISS heaps, top-(k+1)", "torch_heap"),
            (f"full sweep, exact fp32 path, engine auto ({resolve_engine('auto')}): search + 8 (k, T) votes "
             "(`knn_classify`)", "sweep_fp32"),
            ("full sweep, engine faiss", "sweep_faiss"),
            ("full sweep, engine numpy", "sweep_numpy"),
            ("bf16 candidates + certified float64 re-rank, top-(k+1)", "bf16"),
            ("full sweep, bf16-candidate path (same results)", "sweep_bf16"),
            ("torch feature bank: chunked matmul + topk", "torch"),
            ("IVF (nprobe 16) search + vote", "ivf")]
    for name, key in rows:
        if key in knn["rows"]:
            row = knn["rows"][key]
            print(f"| {name} | {row['s']:.2f} | {row['ratio']:.2f}x |")
    if not bf16:
        print("| bf16-candidate path | not timed: this CPU has no native bf16 GEMM (pass --bf16 on) | |")
    print(f"\nLinear probe: {probe['num_heads']} heads ({len(DEFAULT_LRS)} LRs x {len(DEFAULT_WDS)} WDs), "
          f"{args.probe_epochs} epochs, {args.probe_images} images, {args.backbone} features (D={probe['dim']})\n")
    print("| what | seconds | vs extraction |\n|---|---|---|")
    print(f"| one extraction pass ({args.backbone}, 32 px) | {probe['extract_s']:.2f} | 1.00x |")
    print(f"| probe grid: training only | {probe['train_s']:.2f} | {probe['train_s'] / probe['extract_s']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"machine": describe_blas(), "threads": args.threads, "knn": knn,
                                          "probe": probe}, indent=2))
    print(f"| probe grid: whole protocol | {probe['probe_s']:.2f} | {probe['probe_s'] / probe['extract_s']:.2f}x |")


if __name__ == "__main__":
    main()
