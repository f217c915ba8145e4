"""``sslkit data shard|verify|inspect`` end to end: CLI -> shards -> stream."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from sslkit.data.cli import main
from sslkit.data.datamodule import build_eval_loader
from sslkit.errors import UserError
from tests.data.ingest_helpers import class_folder


def test_shard_digits_then_read(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "digits-test"
    argv = ["shard", "--source", "digits", "--split", "test", "--out", str(out), "--format", "jpg",
            "--max-samples-per-shard", "100", "--size", "16", "--no-progress"]
    assert main(argv) == 0
    assert "360 samples in 4 shards" in capsys.readouterr().out  # digits: decoded pixels, encoded as asked
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


def _folder_shards(tmp_path: Path) -> Path:
    class_folder(tmp_path / "src", num_classes=3, per_class=10)
    out = tmp_path / "shards"
    assert main(["shard", "--source", "folder", "--root", str(tmp_path / "src"), "--out", str(out),
                 "--max-samples-per-shard", "8", "--workers", "1", "--no-progress"]) == 0
    return out


def test_shard_folder_passthrough_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _folder_shards(tmp_path)
    line = capsys.readouterr().out
    assert "30 samples written" in line and "0 skipped" in line and "30 samples in 4 shards" in line
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["image_format"] == "jpg" and manifest["num_passthrough"] == 30
    assert (out / "skipped.jsonl").read_text() == ""


def test_verify_passes_then_names_a_swapped_shard(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Acceptance 4: a shard overwritten by a copy of another is detected and named; exit 1."""
    out = _folder_shards(tmp_path)
    capsys.readouterr()
    assert main(["verify", str(out), "--no-progress"]) == 0
    assert "4 shards, 30 samples verified" in capsys.readouterr().out
    shutil.copy(out / "src-000000.tar", out / "src-000002.tar")
    assert main(["verify", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "src-000002.tar: sha256 mismatch (is a copy of src-000000.tar" in err and "1 of 4 shards FAILED" in err


def test_verify_names_a_sample_index_of_another_shard(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _folder_shards(tmp_path)
    capsys.readouterr()
    shutil.copy(out / "src-000000.tar.idx.json", out / "src-000001.tar.idx.json")
    assert main(["verify", str(out), "--no-progress"]) == 1
    assert "src-000001.tar: its sample index src-000001.tar.idx.json describes another shard" in capsys.readouterr().err


def test_verify_reports_truncated_and_missing_shards(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _folder_shards(tmp_path)
    data = (out / "src-000001.tar").read_bytes()
    (out / "src-000001.tar").write_bytes(data[: len(data) // 2])
    (out / "src-000003.tar").unlink()
    assert main(["verify", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "src-000001.tar: sha256 mismatch (content changed" in err
    assert "src-000003.tar: cannot be read" in err and "2 of 4 shards FAILED" in err


def test_verify_without_manifest_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no manifest.json"):
        main(["verify", str(tmp_path)])


def test_inspect_counts_histogram_and_grid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _folder_shards(tmp_path)
    assert main(["inspect", str(out), "--out", str(tmp_path / "look"), "--grid", "12"]) == 0
    summary = json.loads((tmp_path / "look" / "inspect.json").read_text())
    assert summary["num_samples"] == 30 and summary["num_shards"] == 4 and summary["image_formats"] == {"jpg": 30}
    assert summary["class_counts"] == {"c0": 10, "c1": 10, "c2": 10} and summary["num_unlabeled"] == 0
    grid = Image.open(tmp_path / "look" / "inspect.png")
    assert grid.size == (8 * 96, 2 * (96 + 14))  # 12 tiles, 8 per row
    assert "3 classes: 10 to 10 samples per class" in capsys.readouterr().out


def test_slurm_array_gives_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    from sslkit.data.cli import _nodes

    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "5")
    assert _nodes(None, None) == (4, 2)
    assert _nodes(2, 1) == (2, 1)  # explicit flags win
