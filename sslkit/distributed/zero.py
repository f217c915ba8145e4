"""DeepSpeed ZeRO through Lightning's ``DeepSpeedStrategy``, with what SSL training needs on top.

:class:`ZeROStrategy` is Lightning's strategy plus:

- the micro-batch size DeepSpeed logs with, read from the data module (Lightning reads
  ``loader.batch_sampler.batch_size``, which a WebDataset loader emitting whole batches lacks);
- atomic checkpoint folders (written to ``<path>.tmp``, swapped in; see :mod:`.checkpoint_io`);
- the fp32 EMA-teacher shadows of :mod:`sslkit.teacher.update`, one file per rank
  (``ema_fp32_rank{r}.pt``) inside the checkpoint folder, since under ZeRO-3 every rank holds
  different slices; restored on resume.

:func:`convert_checkpoint` turns a checkpoint folder into one plain fp32 Lightning checkpoint file
with DeepSpeed's own ``zero_to_fp32`` (through Lightning's wrapper), then puts the fp32 teacher
shadows over the teacher weights it reconstructed from the bf16 module states. Run it as
``python -m sslkit.distributed.zero CHECKPOINT_DIR OUTPUT.ckpt``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.strategies import DeepSpeedStrategy

from sslkit.distributed.checkpoint_io import (
    TMP_SUFFIX, AtomicCheckpointIO, deepspeed_safe_globals, recover_checkpoint, replace_dir, weights_only_torch_load,
)
from sslkit.teacher import ema_state_dict, load_ema_state_dict

EMA_FILE = "ema_fp32_rank{rank}.pt"
DEEPSPEED_KEYS = ("buffer_names", "param_shapes", "frozen_param_shapes", "frozen_param_fragments", "shared_params",
                  "ds_config", "ds_version", "data_sampler", "random_ltd", "global_samples",
                  "checkpoint_parallel_dimensions")


class ZeROStrategy(DeepSpeedStrategy):
    """Lightning's ``DeepSpeedStrategy`` (same arguments: ``stage``, ``offload_optimizer``, ...)."""

    def resolved_config(self) -> dict[str, Any]:
        """The DeepSpeed config the engine will get (precision, clipping, micro batch filled in).

        Needs the strategy connected to a trainer and module (as during ``fit``).
        """
        self._init_config_if_needed()
        assert isinstance(self.config, dict)
        return self.config

    def _format_config(self) -> None:
        super()._format_config()
        assert isinstance(self.config, dict)
        offload = (self.config.get("zero_optimization") or {}).get("offload_optimizer")
        if offload and offload.get("device") != "none":
            # The objective builds its own optimizer (AdamW/LARS/SGD); DeepSpeed refuses a client
            # optimizer with offload unless told it may step it on the CPU (slower than DeepSpeedCPUAdam).
            self.config.setdefault("zero_force_ds_cpu_optimizer", False)

    def _auto_select_batch_size(self) -> int:
        trainer = self.lightning_module.trainer if self.lightning_module is not None else None
        datamodule = getattr(trainer, "datamodule", None)
        size = getattr(datamodule, "batch_size_per_device", None)
        if size is None and trainer is not None and trainer.fit_loop._data_source.is_defined():
            loader = trainer.fit_loop._data_source.dataloader()
            size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
            size = size or getattr(getattr(loader, "dataset", None), "batch_size", None)
        return int(size or 1)

    def save_checkpoint(self, checkpoint: dict, filepath: _PATH, storage_options: Any | None = None) -> None:
        path = Path(self.broadcast(str(filepath)))
        tmp = path.with_name(path.name + TMP_SUFFIX)
        if self.is_global_zero:
            shutil.rmtree(tmp, ignore_errors=True)
        self.barrier("zero-save-start")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        shadows = ema_state_dict(self.lightning_module) if self.lightning_module is not None else {}
        AtomicCheckpointIO().save_checkpoint(shadows, tmp / EMA_FILE.format(rank=self.global_rank))
        self.barrier("zero-save-written")
        if self.is_global_zero:
            replace_dir(tmp, path)
        self.barrier("zero-save-done")

    def load_checkpoint(self, checkpoint_path: _PATH, weights_only: bool | None = None) -> dict[str, Any]:
        path = recover_checkpoint(checkpoint_path)
        # DeepSpeed's checkpoint engine calls torch.load(weights_only=False): resume reads weights only too.
        with weights_only_torch_load(deepspeed_safe_globals()):
            client_state = super().load_checkpoint(path, weights_only)
        shadow_file = path / EMA_FILE.format(rank=self.global_rank)
        if path.is_dir() and shadow_file.is_file() and self.lightning_module is not None:
            load_ema_state_dict(self.lightning_module, torch.load(shadow_file, map_location="cpu", weights_only=True))
        return client_state


def convert_checkpoint(checkpoint_dir: str | Path, output_file: str | Path) -> dict[str, Any]:
    """A DeepSpeed checkpoint folder -> one fp32 Lightning checkpoint (``load_objective`` reads it).

    Student weights come from DeepSpeed's fp32 optimizer partitions (``zero_to_fp32``); teacher
    weights from the fp32 EMA shadows when the run kept them (bf16 runs), else from the module states.
    """
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    checkpoint_dir, output_file = recover_checkpoint(checkpoint_dir), Path(output_file)
    tmp = output_file.with_name(output_file.name + TMP_SUFFIX)
    checkpoint = convert_zero_checkpoint_to_fp32_state_dict(checkpoint_dir, tmp)
    tmp.unlink(missing_ok=True)
    for key in DEEPSPEED_KEYS:  # engine bookkeeping, not part of a Lightning checkpoint
        checkpoint.pop(key, None)
    # zero_to_fp32 rebuilds parameters in fp32; buffers (e.g. fixed position tables) keep the run's dtype.
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    for name, value in merge_ema_shadows(checkpoint_dir, {k: v.shape for k, v in state.items()}).items():
        state[name] = value
    checkpoint["state_dict"] = state
    AtomicCheckpointIO().save_checkpoint(checkpoint, output_file)
    return checkpoint


def merge_ema_shadows(checkpoint_dir: Path, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Whole fp32 teacher tensors from the per-rank shadows: slices are concatenated in rank order.

    A shadow with as many elements as its parameter is whole (ZeRO-1/2, or a ZeRO-3 parameter kept on
    every rank); otherwise rank ``r`` holds flat elements ``[r * P, (r + 1) * P)``, the last padded.
    """
    files = sorted(checkpoint_dir.glob(EMA_FILE.format(rank="*")), key=lambda p: int(p.stem.rsplit("rank", 1)[1]))
    per_rank = [torch.load(f, map_location="cpu", weights_only=True) for f in files]
    merged: dict[str, torch.Tensor] = {}
    for name in per_rank[0] if per_rank else {}:
        if name not in shapes:
            continue
        numel = shapes[name].numel()
        parts = [rank_state[name].reshape(-1) for rank_state in per_rank]
        flat = parts[0] if parts[0].numel() == numel else torch.cat(parts)[:numel]
        merged[name] = flat.reshape(shapes[name]).clone()
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sslkit.distributed.zero", description=convert_checkpoint.__doc__)
    parser.add_argument("checkpoint_dir", type=Path, help="a DeepSpeed checkpoint folder (e.g. checkpoints/last.ckpt)")
    parser.add_argument("output", type=Path, help="the fp32 checkpoint file to write")
    args = parser.parse_args(argv)
    convert_checkpoint(args.checkpoint_dir, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
