"""The report draws only what exists: log series by optimizer step, a log without the metric is no panel."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslkit.errors import UserError
from sslkit.evaluation.report import draw_report, read_log_series


def test_log_series_by_step_and_nothing_drawn_for_missing_metric(tmp_path: Path) -> None:
    metrics = tmp_path / "run" / "metrics.csv"
    metrics.parent.mkdir()
    metrics.write_text("epoch,step,train/loss,val/knn_top1\n0,9,4.0,\n0,19,3.5,\n1,29,3.0,40.0\n")
    assert read_log_series(metrics, "train/loss") == [(9, 4.0), (19, 3.5), (29, 3.0)]
    assert read_log_series(metrics) == [(29, 40.0)]
    assert draw_report([], [metrics], tmp_path / "loss.png", "train/loss").stat().st_size > 0
    with pytest.raises(UserError, match="val/rankme"):
        draw_report([], [metrics], tmp_path / "none.png", "val/rankme")
    assert not (tmp_path / "none.png").exists()
