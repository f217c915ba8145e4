"""``sslkit publish`` from the command line: run dir and bare checkpoint, --which, --overwrite, --push to\nan unreachable Hub; ``load_pretrained`` from a checkpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from sslkit.cli import main as sslkit_main
from sslkit.publish import verify_sums


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

    assert sslkit_main(args) == 2  # a non-empty --out is never replaced silently
    assert "pass --overwrite" in capsys.readouterr().err
    assert sslkit_main([*args, "--overwrite"]) == 0
    verify_sums(out)


def test_which_teacher_without_a_teacher_is_a_clear_error(trained_run, tmp_path, capsys) -> None:
    run_dir = trained_run("simclr_resnet18")
    assert sslkit_main(["publish", str(run_dir), "--out", str(tmp_path / "o"), "--which", "teacher"]) == 2
    assert "SimCLR has no EMA teacher" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# Fresh interpreter, so HF_ENDPOINT is set before huggingface_hub is imported (it reads its endpoint
# at import, and fetches more than the upload from it). DNS lookups of anything but loopback are
# refused and recorded: the test proves no traffic leaves the machine.
PUSH_CHILD = r"""
import socket, sys, time
foreign, _getaddrinfo = [], socket.getaddrinfo
def guarded(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1"):
        foreign.append(host)
        raise socket.gaierror(f"test guard: no traffic to {host}")
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = guarded
import sslkit
from sslkit.cli import main
from sslkit.publish import HubUnreachable, push_folder
run_dir, out = sys.argv[1:3]
print("RC", main(["publish", run_dir, "--out", out, "--push", "me/model"]), flush=True)
start = time.monotonic()
try:
    push_folder(out, "me/model")
except HubUnreachable as err:
    print("PUSH", round(time.monotonic() - start, 2), err)
try:
    sslkit.load_pretrained("me/model")
except HubUnreachable as err:
    print("LOAD", err)
print("FOREIGN", foreign)
"""


def test_hub_unreachable_fails_fast_keeps_the_folder_and_stays_on_loopback(trained_run, tmp_path) -> None:
    out = tmp_path / "published"
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_TOKEN": "hf_not_a_real_token",
           "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf_home")}
    proc = subprocess.run([sys.executable, "-c", PUSH_CHILD, str(trained_run("simclr_resnet18")), str(out)],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in proc.stdout.splitlines() if " " in line}
    assert lines["RC"] == "2"  # a user error: exit 2
    assert "could not reach the Hub" in proc.stderr and f"the folder {out} is intact" in proc.stderr
    seconds, message = lines["PUSH"].split(" ", 1)
    assert float(seconds) < 10 and message.startswith("could not reach the Hub: ")
    assert lines["LOAD"].startswith("could not reach the Hub to download me/model")
    assert lines["FOREIGN"] == "[]"
    verify_sums(out)  # complete and unchanged: every file still matches the sums written before the push


def test_load_pretrained_from_a_checkpoint(trained_run) -> None:
    import torch

    from sslkit import load_pretrained
    from sslkit.objectives import load_objective

    ckpt = trained_run("dino_vit") / "checkpoints" / "last.ckpt"
    model = load_pretrained(ckpt)  # the checkpoint's eval_backbone() as a plain timm model
    assert type(model).__module__.startswith("timm.")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), load_objective(ckpt).eval_backbone().eval()(x), atol=1e-5, rtol=0)
