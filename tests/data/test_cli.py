"""``sslkit data shard`` end to end: CLI -> shards -> stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sslkit.data.cli import main
from sslkit.data.datamodule import build_eval_loader


def test_shard_digits_then_read(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "digits-test"
    argv = ["shard", "--source", "digits", "--split", "test", "--out", str(out), "--format", "jpg",
            "--max-samples-per-shard", "100", "--size", "16", "--no-progress"]
    assert main(argv) == 0
    assert "360 samples in 4 shards" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["image_size"] == [16, 16] and manifest["image_format"] == "jpg"
    assert manifest["source"] == "digits:test" and manifest["class_names"] == [str(d) for d in range(10)]
    batches = list(build_eval_loader(out, None, batch_size=64, num_workers=0))
    assert sum(len(b["key"]) for b in batches) == 360 and batches[0]["image"].shape == (64, 3, 16, 16)


def test_shard_mb_limit(tmp_path: Path) -> None:
    argv = ["shard", "--source", "digits", "--out", str(tmp_path), "--max-samples-per-shard", "100000",
            "--max-shard-mb", "0.5", "--no-progress"]
    assert main(argv) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["shards"]) > 1 and all(s["num_bytes"] <= 500_000 for s in manifest["shards"])


def test_bad_arguments_exit_nonzero() -> None:
    with pytest.raises(SystemExit):
        main(["shard", "--source", "nope", "--out", "x"])
