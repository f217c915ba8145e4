"""The environment check and the report of ``bench/gpu.sh``: one JSON and a printed table.

    python bench/gpu_report.py --env [--dry-run]   # torch/CUDA/device; flash SDPA at ViT-S/16 shapes in bf16
    python bench/gpu_report.py --out DIR           # DIR/stages.tsv + DIR/<stage>.log -> DIR/gpu.json, table

Figures are read from each stage's own output (``bench/backbone.py``'s step lines, ``bench/data.py``'s
JSON, the pytest summary); a stage that failed or ran out of time is reported as such, never dropped.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

STEP_LINE = re.compile(r"^\s+(vit_\w+)\s+(\{.*?\})\s+B=\s*(\d+)\s+([\d.]+) img/s.*?MFU\s+([\d.]+)%", re.M)
AUG_RATIO = re.compile(r"device / worker augmentation, end to end, (\d+) workers: ([\d.]+)x")
PYTEST_SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed|skipped|deselected|error).*?)(?: in [\d.]+s)?\s*=*$", re.M)
TIMEOUT_RCS = (124, 137)


def check_env(dry_run: bool) -> int:
    """Print the software and device; with CUDA, run one flash-attention SDPA call (fails if flash is off)."""
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        print("flash SDPA: not checked (no CUDA device)")
        return 0 if dry_run else 1
    from torch.nn.attention import SDPBackend, sdpa_kernel

    print(f"device: {torch.cuda.get_device_name()}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
    q = torch.randn(256, 6, 197, 64, device="cuda", dtype=torch.bfloat16)  # ViT-S/16 at 224 px, batch 256
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        F.scaled_dot_product_attention(q, q, q)
    torch.cuda.synchronize()
    print("flash SDPA: ok (bf16, ViT-S/16 shapes)")
    return 0


def stage_figures(name: str, log: str, out: Path) -> dict[str, Any]:
    """The figures a stage's output carries (empty when it printed none)."""
    if name == "step":
        return {f"{m[0]} {'compiled' if 'compile' in m[1] else 'eager'} B={m[2]}": {"img_s": float(m[3]),
                                                                                   "mfu_pct": float(m[4])}
                for m in STEP_LINE.findall(log)}
    if name == "data":
        figures: dict[str, Any] = {f"device/worker aug, {w} workers": float(r) for w, r in AUG_RATIO.findall(log)}
        data_json = out / "data.json"
        if data_json.is_file():
            figures["end_to_end_img_s"] = json.loads(data_json.read_text()).get("end_to_end")
        return figures
    if name == "pytest":
        found = PYTEST_SUMMARY.findall(log)
        return {"summary": found[-1]} if found else {}
    if name.endswith("_convert"):
        return {"fp32_checkpoint": (out / name.split("_")[0] / "fp32.ckpt").is_file()}
    return {}


def report(out: Path, dry_run: bool) -> int:
    rows = []
    for line in (out / "stages.tsv").read_text().splitlines():
        name, rc, seconds = line.split("\t")
        log_path = out / f"{name}.log"
        log = log_path.read_text(errors="replace") if log_path.is_file() else ""
        status = "ok" if rc == "0" else ("timed out" if int(rc) in TIMEOUT_RCS else f"failed (rc {rc})")
        rows.append({"stage": name, "status": status, "seconds": int(seconds),
                     "figures": stage_figures(name, log, out), "log_tail": log[-2000:]})
    result = {"dry_run": dry_run, "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "torch": torch.__version__, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "total_seconds": sum(r["seconds"] for r in rows), "stages": rows}
    (out / "gpu.json").write_text(json.dumps(result, indent=2))
    print(f"\nbench/gpu.sh{' --dry-run' if dry_run else ''} on {result['device']}, {result['total_seconds']} s"
          f" -> {out / 'gpu.json'}\n")
    print("| stage | status | s | figures |\n|---|---|---:|---|")
    for r in rows:
        figures = "; ".join(f"{k}: {_fmt(v)}" for k, v in r["figures"].items()) or "-"
        print(f"| {r['stage']} | {r['status']} | {r['seconds']} | {figures} |")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return f"{value:,.1f}" if isinstance(value, float) else str(value)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", action="store_true", help="check the environment (and flash SDPA) and exit")
    p.add_argument("--out", type=Path, help="bench/gpu.sh's output folder: write gpu.json and print the table")
    p.add_argument("--dry-run", action="store_true", help="CPU dry run: a missing GPU is not a failure")
    args = p.parse_args()
    if args.env:
        return check_env(args.dry_run)
    if args.out is None:
        p.error("give --env or --out DIR")
    return report(args.out, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
