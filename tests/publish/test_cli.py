"""``sslkit publish`` from the command line: run dir and bare checkpoint, --which, --overwrite, --push offline."""

from __future__ import annotations

import json
import socket
import time

import pytest

from sslkit.cli import main as sslkit_main
from sslkit.publish import HubUnreachable, push_folder, verify_sums


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bare_checkpoint_student_and_overwrite(trained_run, tmp_path, capsys) -> None:
    ckpt = trained_run("dino_vit") / "checkpoints" / "last.ckpt"
    bare = tmp_path / "bare.ckpt"
    bare.write_bytes(ckpt.read_bytes())  # no run directory around it
    out = tmp_path / "student"
    args = ["publish", str(bare), "--out", str(out), "--which", "student", "--input-size", "32", "--license", "mit"]
    assert sslkit_main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["sslkit"]["backbone"] == "student" and config["pretrained_cfg"]["license"] == "mit"
    card = (out / "README.md").read_text()
    assert "**student** weights" in card and "Not evaluated" in card and "license: mit" in card
    assert "No run directory" in (out / "training_config.yaml").read_text()

    assert sslkit_main(args) == 1  # a non-empty --out is never replaced silently
    assert "pass --overwrite" in capsys.readouterr().err
    assert sslkit_main([*args, "--overwrite"]) == 0
    verify_sums(out)


def test_which_teacher_without_a_teacher_is_a_clear_error(trained_run, tmp_path, capsys) -> None:
    run_dir = trained_run("simclr_resnet18")
    assert sslkit_main(["publish", str(run_dir), "--out", str(tmp_path / "o"), "--which", "teacher"]) == 1
    assert "SimCLR has no EMA teacher" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_push_to_an_unreachable_hub_fails_fast_and_keeps_the_folder(trained_run, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")  # loopback only, nothing listens
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    out = tmp_path / "published"
    assert sslkit_main(["publish", str(trained_run("simclr_resnet18")), "--out", str(out), "--push", "me/model"]) == 1
    err = capsys.readouterr().err
    assert "could not reach the Hub" in err and f"the folder {out} is intact" in err
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    verify_sums(out)

    start = time.monotonic()
    with pytest.raises(HubUnreachable, match=r"could not reach the Hub: .*; the folder .* is intact"):
        push_folder(out, "me/model")
    assert time.monotonic() - start < 10
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
