"""Attention kernels vs the naive softmax(QKᵀ)V: time and peak memory, fwd+bwd, L ∈ {256, 1024, 4096};
plus 2-D local (neighbourhood) attention as dense-masked SDPA and as FlexAttention.

Each configuration runs in a fresh process so that its peak memory is its own: on CPU the peak is
the growth of the process high-water mark (``VmHWM``, reset before) over one fwd+bwd, on CUDA
``torch.cuda.max_memory_allocated``. Times are medians over repeats. Usage::

    python bench/attention.py                 # CPU, fp32
    python bench/attention.py --device cuda   # bf16, flash SDPA; FlexAttention compiled
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from sslkit.backbones.attention import attend, reference_attention  # noqa: E402
from sslkit.backbones.masks import dense_mask, make_mask_mod  # noqa: E402

HEADS, HEAD_DIM = 6, 64  # ViT-S/16


def _local_mask(L: int, window: int, device: str) -> tuple[object, torch.Tensor]:
    side = int(L**0.5)
    mask_mod = make_mask_mod(torch.arange(L, device=device).unsqueeze(0), (side, side), (window, window))
    return mask_mod, dense_mask(mask_mod, 1, L, torch.device(device))


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_cpu_peak() -> int:
    """Return freed heap to the OS and reset the process high-water mark (Linux ≥ 4.0); returns RSS."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def _run(
    impl: str, L: int, batch_size: int, device: str, repeats: int, window: int, grad: bool, threads: int, queue: mp.Queue
) -> None:
    if device == "cpu":
        torch.set_num_threads(threads)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    q, k, v = (torch.randn(batch_size, HEADS, L, HEAD_DIM, device=device, dtype=dtype, requires_grad=grad) for _ in range(3))
    mask = None
    if window:
        mask_mod, dense = _local_mask(L, window, device)
        if impl == "flex":
            from torch.nn.attention.flex_attention import create_block_mask

            mask = create_block_mask(mask_mod, 1, None, L, L, device)
            if device == "cpu":  # eager CPU flex materialises scores; compile once (~25 s) to time the kernel
                import torch.nn.attention.flex_attention as fa

                compiled = torch.compile(fa.flex_attention, dynamic=False)
                fn = lambda: compiled(q, k, v, block_mask=mask)  # noqa: E731
        else:
            mask = dense
    if impl == "naive":
        fn = lambda: reference_attention(q, k, v, mask)  # noqa: E731
    elif not (impl == "flex" and device == "cpu"):
        fn = lambda: attend(q, k, v, mask)  # noqa: E731

    def step() -> None:
        out = fn()
        if grad:
            out.backward(torch.ones_like(out))
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        base = _reset_cpu_peak()
        step()
        peak = _status_bytes("VmHWM") - base
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    queue.put((statistics.median(times), peak, "fwd+bwd" if grad else "fwd"))


def measure(
    impl: str, L: int, batch_size: int, device: str, repeats: int, window: int = 0, grad: bool = True, threads: int = 2
) -> tuple[float, int, str]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(impl, L, batch_size, device, repeats, window, grad, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (1 on an oversubscribed machine)")
    args = parser.parse_args()
    dev, th = args.device, args.threads
    print(f"# bench/attention.py  device={dev}  {'bf16' if dev == 'cuda' else 'fp32'}  H={HEADS} d={HEAD_DIM}  threads={th}"
          f"  torch {torch.__version__}  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'L':>5} {'B':>3}  {'impl':18s} {'pass':8s} {'time ms':>9} {'peak MiB':>9}  {'speedup':>8} {'mem ratio':>9}")
    for L in (256, 1024, 4096):
        B = {256: 32, 1024: 4, 4096: 1}[L] * (8 if dev == "cuda" else 1)
        naive = measure("naive", L, B, dev, args.repeats, threads=th)
        ours = measure("sdpa", L, B, dev, args.repeats, threads=th)
        for name, (t, m, kind) in (("naive", naive), ("sdpa (ours)", ours)):
            print(f"{L:5d} {B:3d}  {name:18s} {kind:8s} {1e3 * t:9.2f} {m / 2**20:9.1f}"
                  f"  {naive[0] / t:7.2f}x {naive[1] / max(m, 1):8.2f}x")
    L, window = 4096, 7  # 64x64 patch grid (e.g. 1024 px at patch 16), 7x7 neighbourhood
    print(f"Local attention, L={L} (64x64 grid), {window}x{window} window, B=1:")
    grad = dev == "cuda"  # FlexAttention has no CPU backward: compare forward passes there
    naive = measure("naive", L, 1, dev, args.repeats, window, grad, th)
    for name, impl in (("naive + mask", "naive"), ("sdpa + dense mask", "sdpa"), ("flex BlockMask", "flex")):
        t, m, kind = naive if impl == "naive" else measure(impl, L, 1, dev, args.repeats, window, grad, th)
        print(f"{L:5d} {1:3d}  {name:18s} {kind:8s} {1e3 * t:9.2f} {m / 2**20:9.1f}"
              f"  {naive[0] / t:7.2f}x {naive[1] / max(m, 1):8.2f}x")
    if dev == "cpu":
        print("  (CPU: forward only, FlexAttention compiled once per shape, ~25 s, not timed)")


if __name__ == "__main__":
    main()
