"""Gadgets an attacker would put in a checkpoint, and the checks that nothing outside the output ran or changed.

Every gadget is plain data (it passes ``torch.load(weights_only=True)``): a ``class_path`` naming a
callable that opens, writes or runs what its arguments name, placed where sslkit once instantiated
it. :class:`Victims` holds the files such a gadget would touch; ``untouched()`` proves it did not.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tests.conftest import TINY_VIT

VICTIM_TEXT = "fifteen bytes!\n"  # 15 bytes: the size the report saw truncated to 0


@dataclass
class Victims:
    """Files outside any output folder: one that exists (``victim``), one that must not appear (``marker``)."""

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.victim = self.root / "victim.txt"
        self.victim.write_text(VICTIM_TEXT)
        self.marker = self.root / "PWNED"
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(self.root)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in sorted(self.root.rglob("*"))}

    def untouched(self) -> bool:
        return self.victim.read_text() == VICTIM_TEXT and not self.marker.exists() and self.snapshot() == self.before


def _aux(class_path: str, **init_args: Any) -> Callable[[dict, Victims], None]:
    def put(ckpt: dict, v: Victims) -> None:
        ckpt["hyper_parameters"]["aux_loss"] = {"class_path": class_path, "init_args": _fill(init_args, v)}
    return put


def _fill(value: Any, v: Victims) -> Any:
    if isinstance(value, str):
        return value.replace("VICTIM", str(v.victim)).replace("MARKER", str(v.marker))
    if isinstance(value, dict):
        return {k: _fill(x, v) for k, x in value.items()}
    if isinstance(value, list):
        return [_fill(x, v) for x in value]
    return value


def _hparam(key: str, value: Any) -> Callable[[dict, Victims], None]:
    def put(ckpt: dict, v: Victims) -> None:
        ckpt["hyper_parameters"][key] = _fill(value, v)
    return put


def _objective(class_path: str, **hparams: Any) -> Callable[[dict, Victims], None]:
    def put(ckpt: dict, v: Victims) -> None:
        ckpt["sslkit_objective"] = class_path
        ckpt["hyper_parameters"] = _fill(hparams, v)
    return put


OPEN_WB = {"class_path": "builtins.open", "init_args": {"file": "VICTIM", "mode": "w"}}

# name -> (how to plant it, text the one-line refusal must contain)
GADGETS: dict[str, tuple[Callable[[dict, Victims], None], str]] = {
    "gopen_truncates": (_aux("sslkit.data.manifest.gopen", url="VICTIM", mode="wb"),
                        "hyper_parameters.aux_loss.class_path = 'sslkit.data.manifest.gopen'"),
    "builtins_open": (_aux("builtins.open", file="VICTIM", mode="w"), "'builtins.open'"),
    "os_system": (_aux("os.system", command="touch MARKER"), "'os.system'"),
    "subprocess_run": (_aux("subprocess.run", args=["touch", "MARKER"]), "'subprocess.run'"),
    "subprocess_popen": (_aux("subprocess.Popen", args=["touch", "MARKER"]), "'subprocess.Popen'"),
    "path_write_text": (_aux("pathlib.Path.write_text", self="VICTIM", data=""), "'pathlib.Path.write_text'"),
    "torch_load": (_aux("torch.load", f="VICTIM", weights_only=False), "'torch.load'"),
    "sslkit_callback_in_aux_slot": (_aux("sslkit.callbacks.sample_log.SampleKeyLog", out_dir="MARKER"),
                                    "'sslkit.callbacks.sample_log.SampleKeyLog' is not an sslkit aux loss class"),
    "objective_in_aux_slot": (_aux("sslkit.objectives.SimCLR"), "'sslkit.objectives.SimCLR' is not an sslkit aux loss"),
    "unknown_init_arg": (_aux("sslkit.objectives.rotation.FourFoldRotation", hidden_dim=8, url="VICTIM"),
                         "hyper_parameters.aux_loss.init_args.url"),
    "host_filled_arg": (_aux("sslkit.objectives.rotation.FourFoldRotation", in_dim=10**9),
                        "hyper_parameters.aux_loss.init_args.in_dim is filled in by sslkit"),
    "nested_in_listed_class": (_aux("sslkit.objectives.rotation.FourFoldRotation", view=OPEN_WB),
                               "hyper_parameters.aux_loss.init_args.view.class_path = 'builtins.open'"),
    "nested_in_backbone_kwargs": (_hparam("backbone_kwargs", {**TINY_VIT, "act_layer": OPEN_WB}),
                                  "hyper_parameters.backbone_kwargs.act_layer.class_path names the class 'builtins.open'"),
    "nested_in_a_list": (_hparam("betas", [OPEN_WB, 0.9]), "hyper_parameters.betas[0].class_path names the class"),
    "unknown_hparam": (_hparam("url", "VICTIM"), "hyper_parameters.url = "),
    "objective_is_gopen": (_objective("sslkit.data.manifest.gopen", url="VICTIM", mode="wb"),
                           "sslkit_objective = 'sslkit.data.manifest.gopen' is not an sslkit objective class"),
    "objective_is_os_system": (_objective("os.system", command="touch MARKER"), "sslkit_objective = 'os.system'"),
    "cli_instantiator": (_hparam("_instantiator", "os.system"), "_instantiator = 'os.system'"),
    "cli_class_path": (_hparam("_class_path", "builtins.open"), "_class_path = 'builtins.open'"),
    "hub_backbone": (_hparam("backbone", "hf-hub:timm/vit_tiny_patch16_224.augreg_in21k"),
                     "hyper_parameters.backbone = 'hf-hub:timm/vit_tiny_patch16_224.augreg_in21k'"),
    "timm_slash_backbone": (_hparam("backbone", "timm/vit_tiny_patch16_224"), "'timm/vit_tiny_patch16_224'"),
    "pretrained_backbone": (_hparam("backbone_kwargs", {**TINY_VIT, "pretrained": True}),
                            "hyper_parameters.backbone_kwargs.pretrained = True"),
    "pretrained_cfg_overlay_file": (_hparam("backbone_kwargs", {**TINY_VIT, "pretrained_cfg_overlay": {"file": "VICTIM"}}),
                                    "backbone_kwargs.pretrained_cfg_overlay"),
    "checkpoint_path_kwarg": (_hparam("backbone_kwargs", {**TINY_VIT, "checkpoint_path": "VICTIM"}),
                              "backbone_kwargs.checkpoint_path"),
}


def tiny_checkpoint() -> dict[str, Any]:
    """A tiny SimCLR, as Lightning's ``dump_checkpoint`` stores it (``hyper_parameters`` = ``dict(model.hparams)``)."""
    from sslkit.objectives import SimCLR

    torch.manual_seed(0)
    model = SimCLR(backbone="vit_tiny_patch16_224", backbone_kwargs=dict(TINY_VIT), proj_hidden_dim=16,
                   proj_output_dim=8, warmup_epochs=0)
    return lightning_checkpoint(model)


def lightning_checkpoint(model: torch.nn.Module) -> dict[str, Any]:
    """What ``Trainer.save_checkpoint`` writes for ``model``, less trainer state: the parts loaders read."""
    ckpt: dict[str, Any] = {"epoch": 0, "global_step": 0, "state_dict": model.state_dict()}
    if model.hparams:
        ckpt["hparams_name"] = getattr(model, "_hparams_name", "kwargs")
        ckpt["hyper_parameters"] = dict(model.hparams)
    model.on_save_checkpoint(ckpt)
    return ckpt


def plant(name: str, ckpt: dict[str, Any], victims: Victims, path: Path) -> str:
    """Write ``ckpt`` with gadget ``name`` planted to ``path``; returns the text its refusal must contain."""
    put, expected = GADGETS[name]
    evil = copy.deepcopy(ckpt)
    put(evil, victims)
    torch.save(evil, path)
    return expected


def assert_one_line_refusal(message: str, expected: str) -> None:
    """The refusal is one line that names the key and value (``expected``), with no unsafe advice."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    assert len(lines) == 1, message
    assert expected in lines[0], lines[0]
    assert "weights_only=False" not in message and "Traceback" not in message


def no_network(monkeypatch: Any) -> list[Any]:
    """Make every socket connection fail (and record it): loading local files must never try one."""
    import socket

    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network access in a test that loads local files only")

    def resolve(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("name resolution in a test that loads local files only")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return attempts


def empty_shard_folder(root: Path) -> Path:
    """A shard folder that passes the CLI's up-front checks (the checkpoint is refused before it is read)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text('{"shards": [], "num_samples": 0}\n')
    return root
