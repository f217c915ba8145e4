"""``sslkit pretrain`` resume (issue #11, finding 2): a tampered ``last.ckpt`` is refused in one line, exit 2,
even with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the environment (Lightning's resume left
``weights_only`` to torch's default, which that variable flips)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sslkit.data import ImageSource, open_source, write_shards
from tests.distributed.helpers import tiny_recipe, write_recipe
from tests.publish.helpers import Payload
from tests.security.helpers import Victims, plant, tiny_checkpoint


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume_shards")
    source = open_source("digits", split="train", size=32)
    samples = [s for _, s in zip(range(32), source)]
    write_shards(ImageSource(source.name, source.class_names, 32, lambda: iter(samples)), out, prefix="digits",
                 max_samples_per_shard=32, progress=False)
    return out


@pytest.mark.parametrize("payload", ["pickle", "class_path_gadget"])
def test_resume_refuses_a_tampered_last_ckpt(payload, shards, tmp_path, capsys, monkeypatch) -> None:
    from sslkit.cli import main

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    victims = Victims(tmp_path / "outside")
    if payload == "pickle":
        torch.save({"state_dict": {}, "callbacks": {"evil": Payload(victims.marker)}}, last)
        expected = "it is not a weights-only checkpoint"
    else:
        expected = plant("gopen_truncates", tiny_checkpoint(), victims, last)
    victims.before = victims.snapshot()
    recipe = write_recipe(tiny_recipe(shards, run / "keys", num_workers=0, max_epochs=1), tmp_path / "recipe.yaml")

    code = main(["pretrain", "-c", str(recipe), "--run-dir", str(run)])

    err = capsys.readouterr().err
    refusals = [line for line in err.splitlines() if expected in line]
    assert code == 2, err
    assert len(refusals) == 1 and str(last) in refusals[0] and "Traceback" not in err, err
    assert "weights_only=False" not in err
    assert victims.untouched()
    if payload == "pickle":  # the payload is live: torch's default under this variable would have run it
        torch.load(last, map_location="cpu")
        assert victims.marker.exists()
