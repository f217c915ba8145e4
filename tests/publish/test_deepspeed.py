"""Publishing a DeepSpeed ZeRO checkpoint folder: converted with weights-only loading, fp32 weights out.

The folder is fabricated in DeepSpeed's on-disk ZeRO-2 layout (what ``zero_to_fp32`` reads: bf16
module states, fp32 master partitions split over 2 ranks, frozen teacher fragments, sslkit's fp32
EMA shadows per rank), from a really trained DINO run; real ZeRO training needs GPUs.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sslkit.objectives.loading import load_objective, read_checkpoint
from sslkit.publish import PublishError, PublishOptions, load_pretrained, publish
from tests.publish.helpers import Payload

deepspeed = pytest.importorskip("deepspeed")


def fabricate_zero2(ckpt_path: Path, folder: Path, world_size: int = 2, payload: object | None = None) -> Path:
    """Write ``ckpt_path``'s objective as a DeepSpeed ZeRO-2 bf16 checkpoint folder (tag ``checkpoint``)."""
    from deepspeed.runtime.zero.config import ZeroStageEnum

    ckpt = read_checkpoint(ckpt_path)
    objective = load_objective(ckpt_path)
    state = ckpt["state_dict"]
    params = dict(objective.named_parameters())
    trainable = [n for n, p in params.items() if p.requires_grad]
    frozen = [n for n, p in params.items() if not p.requires_grad]
    bf16 = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}
    tag = folder / "checkpoint"
    tag.mkdir(parents=True)
    (folder / "latest").write_text("checkpoint")
    client = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer_states")}
    if payload is not None:
        client["callbacks"] = {"evil": payload}
    torch.save({
        "module": bf16,
        "buffer_names": [n for n, _ in objective.named_buffers()],
        "param_shapes": [OrderedDict((n, state[n].shape) for n in trainable)],
        "frozen_param_shapes": OrderedDict((n, state[n].shape) for n in frozen),
        "frozen_param_fragments": {n: bf16[n] for n in frozen},
        "shared_params": {},
        "ds_version": deepspeed.__version__,
        **client,
    }, tag / "mp_rank_00_model_states.pt")
    flat = torch.cat([state[n].reshape(-1).float() for n in trainable])
    flat = torch.nn.functional.pad(flat, (0, -flat.numel() % (2 * world_size)))
    for rank, part in enumerate(flat.chunk(world_size)):
        torch.save({
            "optimizer_state_dict": {"zero_stage": ZeroStageEnum.gradients, "partition_count": world_size,
                                     "single_partition_of_fp32_groups": [part.clone()]},
            "ds_config": {"zero_optimization": {"stage": 2}, "bf16": {"enabled": True}},
            "ds_version": deepspeed.__version__,
        }, tag / f"bf16_zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
        # sslkit's ZeROStrategy keeps the teacher's fp32 EMA values beside (whole tensors under ZeRO-2)
        torch.save({n: state[n].float() for n in frozen}, folder / f"ema_fp32_rank{rank}.pt")
    return folder


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_deepspeed_folder_publishes_fp32_teacher_and_student(trained_run, tmp_path) -> None:
    ckpt_path = trained_run("dino_vit") / "checkpoints" / "last.ckpt"
    folder = fabricate_zero2(ckpt_path, tmp_path / "last.ckpt")
    fp32 = read_checkpoint(ckpt_path)["state_dict"]

    teacher_out = publish(folder, tmp_path / "teacher")
    published = load_file(str(teacher_out / "model.safetensors"))
    expected = _prefixed(fp32, "teacher_backbone.")
    assert published.keys() == expected.keys()
    assert all(torch.equal(published[k], expected[k]) for k in expected)  # fp32 shadows, not bf16 fragments
    assert "DeepSpeed" in (teacher_out / "README.md").read_text()

    student_out = publish(folder, tmp_path / "student", PublishOptions(which="student"))
    published = load_file(str(student_out / "model.safetensors"))
    expected = _prefixed(fp32, "backbone.")
    assert all(torch.equal(published[k], expected[k]) for k in expected)  # fp32 master partitions

    model = load_pretrained(teacher_out)
    x = torch.randn(2, 3, 32, 32)
    reference = load_objective(ckpt_path).eval_backbone().eval()
    torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=0)


def test_deepspeed_folder_with_a_malicious_pickle_is_refused(trained_run, tmp_path) -> None:
    marker = tmp_path / "PWNED"
    ckpt_path = trained_run("dino_vit") / "checkpoints" / "last.ckpt"
    folder = fabricate_zero2(ckpt_path, tmp_path / "evil.ckpt", payload=Payload(marker))
    with pytest.raises(PublishError, match="refusing to convert the DeepSpeed checkpoint .*weights-only loading"):
        publish(folder, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    assert torch.load is torch.serialization.load  # the weights-only guard is undone
