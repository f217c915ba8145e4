"""SampleKeyLog: one flushed JSON line per training step; torn last lines are ignored."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from sslkit.callbacks.sample_log import SampleKeyLog, read_key_log


def test_lines_are_flushed_per_step_and_torn_tail_ignored(tmp_path: Path) -> None:
    log = SampleKeyLog(tmp_path / "keys")
    trainer = SimpleNamespace(global_rank=1, current_epoch=0, global_step=0)
    log.on_train_start(trainer, None)
    for step in (1, 2):
        trainer.global_step = step
        log.on_train_batch_end(trainer, None, None, {"key": [f"a{step}", f"b{step}"]}, step - 1)
        # flushed: visible to another reader before the file is closed (as after kill -9)
        lines = (tmp_path / "keys" / "keys-rank1.jsonl").read_text().splitlines()
        assert json.loads(lines[-1]) == {"epoch": 0, "step": step, "rank": 1, "keys": [f"a{step}", f"b{step}"]}
    path = tmp_path / "keys" / "keys-rank1.jsonl"
    with open(path, "a") as f:
        f.write('{"epoch": 0, "step": 3, "ra')  # a write cut by a kill
    assert [r["step"] for r in read_key_log(path)] == [1, 2]
    log.on_train_end(trainer, None)
