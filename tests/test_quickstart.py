"""The embedded default run end to end (shortened to two epochs): shards, SimCLR, three kNN rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sslkit.cli import main


@pytest.mark.slow
def test_quickstart_runs_and_pretraining_helps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quickstart", "--out", str(tmp_path), "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    for row in ("raw_pixels", "random_init", "pretrained"):
        assert row in printed
        assert any(line.startswith(f"{row}: ") and len(line) > 60 for line in printed.splitlines())  # explained
    result = json.loads((tmp_path / "quickstart.json").read_text())
    numbers = result["numbers"]
    top1 = {name: row["k20_t0.07_top1"] for name, row in numbers.items()}
    assert top1["raw_pixels"] > 90.0  # kNN on digit pixels is a strong baseline
    assert top1["pretrained"] > top1["random_init"] + 5.0  # two epochs already help
    assert (tmp_path / "quickstart.md").exists()
    assert (tmp_path / "quickstart.png").stat().st_size > 0
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    record = json.loads((tmp_path / "run.json").read_text())  # what publish's card reads
    assert record["train"]["source"] == "digits:train" and record["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    assert len(list((tmp_path / "shards" / "train").glob("*.tar"))) >= 1
