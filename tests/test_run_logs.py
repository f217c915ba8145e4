"""metrics.csv keeps the rows of earlier launches of the same run (resume must lose nothing)."""

from __future__ import annotations

import csv
from pathlib import Path

from sslkit.run_logs import ResumableCSVLogger


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_second_launch_appends_and_widens_the_header(tmp_path: Path) -> None:
    first = ResumableCSVLogger(tmp_path, name="", version="")
    first.log_metrics({"train/loss": 2.0}, step=0)
    first.log_metrics({"train/loss": 1.5}, step=1)
    first.save()

    second = ResumableCSVLogger(tmp_path, name="", version="")  # the resumed launch
    second.log_metrics({"train/loss": 1.0, "val/knn_top1": 50.0}, step=2)
    second.save()

    rows = _rows(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == ["0", "1", "2"]
    assert [r["train/loss"] for r in rows] == ["2.0", "1.5", "1.0"]
    assert rows[2]["val/knn_top1"] == "50.0" and rows[0]["val/knn_top1"] == ""
