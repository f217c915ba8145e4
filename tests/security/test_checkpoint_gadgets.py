"""A weights-only checkpoint naming code (issue #11, finding 1) is refused in one line by every entry point.

Each gadget is tried through ``load_objective``; the entry points that read a checkpoint
(``load_pretrained``, ``sslkit eval knn``/``extract``, ``sslkit publish``) with the reported gadget
(``gopen(url=victim, mode="wb")``, which truncated the file) and a command-running one. Nothing
outside the output folder may be created, changed or truncated.
"""

from __future__ import annotations

import pytest

from sslkit.errors import UserError
from sslkit.objectives import load_objective
from tests.security.helpers import (
    GADGETS, Victims, assert_one_line_refusal, empty_shard_folder, no_network, plant, tiny_checkpoint,
)


@pytest.fixture(scope="module")
def clean_ckpt() -> dict:
    return tiny_checkpoint()


def test_the_clean_checkpoint_loads(clean_ckpt, tmp_path) -> None:
    import torch

    torch.save(clean_ckpt, tmp_path / "clean.ckpt")
    model = load_objective(tmp_path / "clean.ckpt")
    assert all(torch.equal(v, clean_ckpt["state_dict"][k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("gadget", sorted(GADGETS))
def test_load_objective_refuses(gadget, clean_ckpt, tmp_path, monkeypatch) -> None:
    victims = Victims(tmp_path / "outside")
    expected = plant(gadget, clean_ckpt, victims, tmp_path / "evil.ckpt")
    attempts = no_network(monkeypatch)
    with pytest.raises(UserError) as refused:
        load_objective(tmp_path / "evil.ckpt")
    assert_one_line_refusal(str(refused.value), expected)
    assert victims.untouched() and not attempts


@pytest.mark.parametrize("gadget", ["gopen_truncates", "os_system", "hub_backbone"])
def test_load_pretrained_refuses(gadget, clean_ckpt, tmp_path, monkeypatch) -> None:
    from sslkit import load_pretrained

    victims = Victims(tmp_path / "outside")
    expected = plant(gadget, clean_ckpt, victims, tmp_path / "evil.ckpt")
    attempts = no_network(monkeypatch)
    with pytest.raises(UserError) as refused:
        load_pretrained(tmp_path / "evil.ckpt")
    assert_one_line_refusal(str(refused.value), expected)
    assert victims.untouched() and not attempts


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``sslkit ARGV`` in-process: ``(exit code, stderr)``."""
    from sslkit.cli import main

    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return int(code or 0), capsys.readouterr().err


@pytest.mark.parametrize("command", ["eval knn", "eval extract", "publish"])
@pytest.mark.parametrize("gadget", ["gopen_truncates", "subprocess_run"])
def test_cli_refuses(command, gadget, clean_ckpt, tmp_path, capsys) -> None:
    victims = Victims(tmp_path / "outside")
    expected = plant(gadget, clean_ckpt, victims, tmp_path / "evil.ckpt")
    out = tmp_path / "out"
    if command == "publish":
        argv = ["publish", str(tmp_path / "evil.ckpt"), "--out", str(out)]
    else:
        shards = str(empty_shard_folder(tmp_path / "shards"))
        argv = [*command.split(), "--ckpt", str(tmp_path / "evil.ckpt"), "--train-shards", shards,
                "--val-shards", shards, "--features", str(out / "features"), "--no-progress"]
    code, err = _cli(argv, capsys)
    assert code != 0
    assert_one_line_refusal(err, expected)
    assert victims.untouched()
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
