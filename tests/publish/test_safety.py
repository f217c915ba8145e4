"""Safety: tampered files fail SHA256 verification; a malicious pickle is never executed by any loader."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from sslkit.objectives.loading import load_objective, read_checkpoint
from sslkit.publish import ChecksumError, load_pretrained, publish, write_sums
from sslkit.cli import main as sslkit_main
from tests.publish.helpers import Payload


@pytest.fixture(scope="module")
def published(trained_run, tmp_path_factory) -> Path:
    return publish(trained_run("dino_vit"), tmp_path_factory.mktemp("safety") / "published")


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def test_intact_folder_verifies_with_sslkit_and_sha256sum(published) -> None:
    assert load_pretrained(published).num_features == 48
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=published, check=True)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_one_changed_byte_fails_verification(published, tmp_path, name) -> None:
    folder = _copy(published, tmp_path)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=rf"SHA256 mismatch for .*{name}: expected [0-9a-f]{{64}}, got"):
        load_pretrained(folder)


def test_missing_or_incomplete_sums_are_refused(published, tmp_path) -> None:
    folder = _copy(published, tmp_path)
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    (folder / "SHA256SUMS").write_text("\n".join(l for l in sums if not l.endswith("model.safetensors")) + "\n")
    with pytest.raises(ChecksumError, match="does not list model.safetensors"):
        load_pretrained(folder)
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(ChecksumError, match="has no SHA256SUMS"):
        load_pretrained(folder)


def _malicious_checkpoint(path: Path, marker: Path, ckpt: dict) -> Path:
    """A real sslkit checkpoint with one extra entry whose unpickling runs code."""
    torch.save({**ckpt, "callbacks": {"evil": Payload(marker)}}, path)
    return path


def test_malicious_pickle_is_never_executed(trained_run, tmp_path, capsys) -> None:
    marker = tmp_path / "PWNED"
    ckpt = read_checkpoint(trained_run("dino_vit") / "checkpoints" / "last.ckpt")
    evil = _malicious_checkpoint(tmp_path / "evil.ckpt", marker, ckpt)

    with pytest.raises(ValueError, match="refusing to load .*evil.ckpt: it is not a weights-only checkpoint"):
        read_checkpoint(evil)
    with pytest.raises(ValueError, match="refusing to load"):
        load_objective(evil)
    with pytest.raises(ValueError, match="refusing to load"):
        load_pretrained(evil)
    with pytest.raises(ValueError, match="refusing to load"):
        publish(evil, tmp_path / "out_api")
    assert sslkit_main(["publish", str(evil), "--out", str(tmp_path / "out_cli")]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not (tmp_path / "out_cli").exists() and not (tmp_path / "out_api").exists()
    assert not list(tmp_path.glob(".out_*"))  # no staging folder left behind

    # a published-looking folder whose weights are a pickle (listed in valid sums): refused too
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architecture": "resnet18", "model_args": {}}))
    torch.save({"conv1.weight": Payload(marker)}, folder / "pytorch_model.bin")
    write_sums(folder)
    with pytest.raises(ValueError, match="refusing to load .*pytorch_model.bin: it is not loadable with weights_only"):
        load_pretrained(folder)
    assert not marker.exists()

    # the payload is live: plain pickle runs it (so the refusals above are what kept it from running)
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.read_text() == "pwned"
