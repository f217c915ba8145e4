"""``config.json`` of a published folder is data (issue #11, finding 3): no hub, file, URL or ``pretrained``;
timm's constructor and the weights' shapes are checked before the model is built; no network, ever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

import sslkit.publish.loading as loading
from sslkit import load_pretrained
from sslkit.errors import UserError
from sslkit.publish import write_sums
from tests.security.helpers import TINY_VIT, Victims, assert_one_line_refusal, no_network

ARCH = "vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return timm.create_model(ARCH, num_classes=0, **TINY_VIT).state_dict()


def _folder(root: Path, weights: dict, **config) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(root / "model.safetensors"))
    base = {"architecture": ARCH, "num_classes": 0, "model_args": {**TINY_VIT, "num_classes": 0},
            "pretrained_cfg": {"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.5] * 3}}
    (root / "config.json").write_text(json.dumps({**base, **config}))
    write_sums(root)  # valid sums: the attacker publishes them too
    return root


def test_the_clean_folder_loads(weights, tmp_path, monkeypatch) -> None:
    attempts = no_network(monkeypatch)
    folder = _folder(tmp_path / "clean", weights, pretrained_cfg={
        "input_size": [3, 32, 32], "hf_hub_id": "evil/x", "url": "https://evil.example/w.bin", "crop_pct": 1.0})
    model = load_pretrained(folder)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert model.pretrained_cfg["crop_pct"] == 1.0 and model.pretrained_cfg["file"].endswith("model.safetensors")
    assert "url" not in model.pretrained_cfg and "hf_hub_id" not in model.pretrained_cfg  # nowhere to load from
    assert not attempts


ARGS = {**TINY_VIT, "num_classes": 0}
CASES = {
    "hf_hub_architecture": ({"architecture": "hf-hub:timm/vit_tiny_patch16_224.augreg_in21k"},
                            "architecture = 'hf-hub:timm/vit_tiny_patch16_224.augreg_in21k' is not a timm architecture"),
    "hf_hub_underscore": ({"architecture": "hf_hub:timm/x"}, "architecture = 'hf_hub:timm/x'"),
    "timm_slash": ({"architecture": "timm/vit_tiny_patch16_224"}, "architecture = 'timm/vit_tiny_patch16_224'"),
    "url_architecture": ({"architecture": "https://evil.example/model"}, "architecture = 'https://evil.example/model'"),
    "path_architecture": ({"architecture": "VICTIM"}, "architecture = "),
    "unknown_architecture": ({"architecture": "no_such_net"}, "architecture = 'no_such_net' is not a timm architecture"),
    "pretrained": ({"model_args": {**ARGS, "pretrained": True}}, "model_args.pretrained = True"),
    "pretrained_cfg": ({"model_args": {**ARGS, "pretrained_cfg": {"hf_hub_id": "timm/x"}}}, "model_args.pretrained_cfg = "),
    "pretrained_cfg_overlay": ({"model_args": {**ARGS, "pretrained_cfg_overlay": {"file": "VICTIM"}}},
                               "model_args.pretrained_cfg_overlay = "),
    "checkpoint_path": ({"model_args": {**ARGS, "checkpoint_path": "VICTIM"}}, "model_args.checkpoint_path = "),
    "path_value": ({"model_args": {**ARGS, "act_layer": "VICTIM"}}, "model_args.act_layer = "),
    "hub_value": ({"model_args": {**ARGS, "norm_layer": "hf-hub:x/y"}}, "model_args.norm_layer = 'hf-hub:x/y'"),
    "class_spec_value": ({"model_args": {**ARGS, "act_layer": {"class_path": "builtins.open", "init_args": {"file": "VICTIM"}}}},
                         "model_args.act_layer.class_path names the class 'builtins.open'"),
    "not_a_timm_argument": ({"model_args": {**ARGS, "url": "x"}}, "model_args are not all vit_tiny_patch16_224 arguments"),
    "deeper_than_the_weights": ({"model_args": {**ARGS, "depth": 24}}, "blocks.10.attn.proj.bias is (48,) in the model, absent in the weights"),
    "wider_than_the_weights": ({"model_args": {**ARGS, "embed_dim": 1024, "num_heads": 16}}, "blocks.0.attn.proj.bias is (1024,) in the model, (48,) in the weights"),
    "unknown_stem": ({"sslkit": {"stem": "evil"}}, "sslkit.stem = 'evil' is not one of"),
    "not_an_object": ([], "must hold a JSON object"),
}


def _fill(value, victims: Victims):
    return json.loads(json.dumps(value).replace("VICTIM", str(victims.victim)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_json_is_refused(case, weights, tmp_path, monkeypatch) -> None:
    victims = Victims(tmp_path / "outside")
    change, expected = CASES[case]
    folder = _folder(tmp_path / "folder", weights)
    config = json.loads((folder / "config.json").read_text())
    config = {**config, **_fill(change, victims)} if isinstance(change, dict) else change
    (folder / "config.json").write_text(json.dumps(config))
    write_sums(folder)
    built_on: list[str] = []
    original = loading.build_timm_model

    def spy(*args, **kwargs):
        built_on.append(str(torch.empty(0).device))
        return original(*args, **kwargs)

    monkeypatch.setattr(loading, "build_timm_model", spy)
    attempts = no_network(monkeypatch)
    with pytest.raises(UserError) as refused:
        load_pretrained(folder)
    assert_one_line_refusal(str(refused.value), expected)
    assert "cpu" not in built_on  # refused before any real weight was allocated
    assert victims.untouched() and not attempts
