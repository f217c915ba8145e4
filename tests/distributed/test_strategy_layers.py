"""Strategy layers (recipes/_base/trainer/*.yaml): each instantiates over a recipe and maps onto Lightning/DeepSpeed.

DeepSpeed runs need CUDA (Lightning's DeepSpeedStrategy refuses CPUs in ``setup_environment``); here
the layers are instantiated on CPU and the DeepSpeed config the engine would receive is checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.strategies import DDPStrategy

from sslkit.config import load_recipes
from sslkit.distributed import AtomicCheckpointIO, PreemptionCheckpoint
from sslkit.distributed.environment import SyncBatchNormOnGPU
from sslkit.distributed.zero import ZeROStrategy
from sslkit.training import SSLCLI, build_cli

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
LAYERS = sorted((RECIPES / "_base" / "trainer").glob("*.yaml"))
RECIPE = RECIPES / "simclr" / "vit_tiny_cifar10.yaml"
ZERO = {  # layer -> (stage, optimizer offload device, parameter offload device)
    "deepspeed_zero1": (1, None, None),
    "deepspeed_zero2": (2, None, None),
    "deepspeed_zero2_offload": (2, "cpu", None),
    "deepspeed_zero3": (3, None, None),
    "deepspeed_zero3_offload": (3, "cpu", "cpu"),
}


def _cli(tmp_path: Path, layer: Path, *extra: str) -> SSLCLI:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(load_recipes([RECIPE, layer])))
    return build_cli(["--config", str(path), "--trainer.accelerator=cpu", "--trainer.devices=1", *extra], tmp_path / "run")


def test_layers_exist_and_document_themselves() -> None:
    names = {p.stem for p in LAYERS}
    assert {"ddp", *ZERO} <= names
    for path in LAYERS:
        assert path.read_text().startswith("#"), f"{path.name} starts with a comment saying what it is"


def test_ddp_layer(tmp_path: Path) -> None:
    cli = _cli(tmp_path, RECIPES / "_base" / "trainer" / "ddp.yaml")
    strategy = cli.trainer.strategy
    assert isinstance(strategy, DDPStrategy)
    assert strategy._get_process_group_backend() == "gloo"  # nccl when the accelerator is CUDA
    assert isinstance(strategy._layer_sync, SyncBatchNormOnGPU)  # SyncBatchNorm with NCCL only
    assert isinstance(strategy.checkpoint_io, AtomicCheckpointIO)
    assert any(isinstance(c, PreemptionCheckpoint) for c in cli.trainer.callbacks)


@pytest.mark.parametrize("name", sorted(ZERO))
def test_deepspeed_layer_maps_stage_offload_precision_clipping(name: str, tmp_path: Path) -> None:
    stage, offload_opt, offload_param = ZERO[name]
    cli = _cli(tmp_path, RECIPES / "_base" / "trainer" / f"{name}.yaml", "--trainer.gradient_clip_val=3.0")
    strategy = cli.trainer.strategy
    assert isinstance(strategy, ZeROStrategy)
    zero = strategy.config["zero_optimization"]
    assert zero["stage"] == stage
    assert zero.get("offload_optimizer", {}).get("device") == offload_opt
    assert zero.get("offload_param", {}).get("device") == offload_param
    assert cli.trainer.precision == "bf16-true"

    # What the engine receives once fitting starts: precision, clipping, micro batch, accumulation.
    cli.trainer.strategy._lightning_module = cli.model
    cli.model.trainer = cli.trainer
    cli.trainer._data_connector.attach_data(cli.model, datamodule=cli.datamodule)
    config = strategy.resolved_config()
    assert config["bf16"] == {"enabled": True}
    assert "fp16" not in config
    assert config["gradient_clipping"] == 3.0
    assert config["train_micro_batch_size_per_gpu"] == cli.datamodule.batch_size_per_device == 256
    assert config["gradient_accumulation_steps"] == 1
    assert config.get("zero_force_ds_cpu_optimizer", True) is (offload_opt is None)


def test_slurm_environment_without_lightnings_requeue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "sslkit", "SLURM_JOB_ID": "7", "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}.items():
        monkeypatch.setenv(key, value)
    cli = _cli(tmp_path, RECIPES / "_base" / "trainer" / "ddp.yaml")
    environment = cli.trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert not environment.auto_requeue  # PreemptionCheckpoint saves last.ckpt at a step boundary instead
