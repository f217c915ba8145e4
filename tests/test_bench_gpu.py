"""``bench/gpu.sh --dry-run``: the prepared GPU check runs end to end on a CPU (every stage, one JSON)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ["env", "step", "data", "zero2", "zero3", "pytest"]


@pytest.mark.slow
def test_gpu_script_dry_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh"), "--dry-run", "--out", str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["dry_run"] is True
    assert [s["stage"] for s in report["stages"]] == STAGES
    assert all(s["status"] == "ok" for s in report["stages"]), [(s["stage"], s["log_tail"]) for s in report["stages"]]
    # The ZeRO stages composed and validated the real recipe + strategy layer (LightningCLI --print_config).
    for stage in ("zero2", "zero3"):
        log = (tmp_path / f"{stage}.log").read_text()
        assert "class_path: sslkit.objectives.MoCoV3" in log and f"stage: {stage[-1]}" in log
    assert "| stage | status |" in result.stdout


def test_report_marks_failures_and_timeouts(tmp_path: Path) -> None:
    (tmp_path / "stages.tsv").write_text("step\t0\t12\ndata\t124\t90\npytest\t1\t5\n")
    (tmp_path / "step.log").write_text(
        "  vit_small_patch16_224  {}                 B=256  2100.5 img/s  ...  MFU  41.2% of 790 TFLOP/s\n"
        "  vit_small_patch16_224  {'compile': True}  B=256  2500.0 img/s  ...  MFU  49.0% of 790 TFLOP/s\n")
    (tmp_path / "pytest.log").write_text("F.\n=== 1 failed, 7 passed in 30.1s ===\n")
    result = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_report.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1  # not every stage is ok
    stages = {s["stage"]: s for s in json.loads((tmp_path / "gpu.json").read_text())["stages"]}
    assert stages["data"]["status"] == "timed out" and stages["pytest"]["status"] == "failed (rc 1)"
    assert stages["step"]["figures"] == {"vit_small_patch16_224 eager B=256": {"img_s": 2100.5, "mfu_pct": 41.2},
                                         "vit_small_patch16_224 compiled B=256": {"img_s": 2500.0, "mfu_pct": 49.0}}
    assert stages["pytest"]["figures"] == {"summary": "1 failed, 7 passed"}
