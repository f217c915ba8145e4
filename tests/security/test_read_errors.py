"""Unreadable checkpoints (issue #14, finding 2): one line, never torch's "retry with weights_only=False"."""

from __future__ import annotations

import os

import pytest
import torch

from sslkit.errors import UserError
from sslkit.objectives.loading import read_checkpoint
from tests.publish.helpers import Payload
from tests.security.helpers import assert_one_line_refusal, empty_shard_folder


def test_random_bytes(tmp_path) -> None:
    path = tmp_path / "noise.ckpt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(UserError) as refused:
        read_checkpoint(path)
    assert_one_line_refusal(str(refused.value), "noise.ckpt: it is not a weights-only checkpoint (not a torch checkpoint")


def test_truncated_checkpoint(tmp_path) -> None:
    path = tmp_path / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(UserError) as refused:
        read_checkpoint(path)
    assert_one_line_refusal(str(refused.value), "cut.ckpt: it is not a weights-only checkpoint")


def test_missing_file(tmp_path) -> None:
    with pytest.raises(UserError) as refused:
        read_checkpoint(tmp_path / "absent.ckpt")
    assert_one_line_refusal(str(refused.value), "absent.ckpt: no such checkpoint file")


def test_pickle_payload_names_the_class(tmp_path) -> None:
    marker = tmp_path / "PWNED"
    torch.save({"state_dict": {}, "x": Payload(marker)}, tmp_path / "evil.ckpt")
    with pytest.raises(UserError) as refused:
        read_checkpoint(tmp_path / "evil.ckpt")
    assert_one_line_refusal(str(refused.value), "exec, which is not plain data")  # what Payload reduces to
    assert not marker.exists()


@pytest.mark.parametrize("case", ["noise", "absent"])
def test_eval_cli_says_it_in_one_line(case, tmp_path, capsys) -> None:
    from sslkit.cli import main

    path = tmp_path / f"{case}.ckpt"
    if case == "noise":
        path.write_bytes(os.urandom(512))
    shards = str(empty_shard_folder(tmp_path / "shards"))
    code = main(["eval", "knn", "--ckpt", str(path), "--train-shards", shards, "--val-shards", shards,
                 "--features", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert code == 2
    assert_one_line_refusal(err, "noise.ckpt: it is not a weights-only" if case == "noise" else "no such checkpoint file")
