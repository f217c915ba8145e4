"""I-JEPA: the loss against the authors' formulation, token keeping, worker-side masks, a two-step fit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslkit.errors import UserError
from sslkit.losses.ijepa import ijepa_loss, ijepa_targets
from sslkit.masking import MultiBlockMaskCollator
from sslkit.objectives import IJEPA
from sslkit.transforms import MaskedImageViews
from tests.objectives.masked_helpers import TINY_VIT, block_token_counts, random_samples, worker_batches

VIEWS = MaskedImageViews(input_size=32, augment=False)


def _model(**kwargs) -> IJEPA:
    return IJEPA(backbone_kwargs=TINY_VIT, predictor_embed_dim=24, predictor_depth=1, predictor_num_heads=3,
                 warmup_epochs=0, **kwargs)


def _authors_loss(z: torch.Tensor, h: torch.Tensor, masks_pred: list[torch.Tensor]) -> torch.Tensor:
    """facebookresearch/ijepa ``src/train.py``, written out: layer-norm the target encoder's
    output, ``apply_masks`` (one block after another, concatenated along the batch), smooth L1."""
    h = F.layer_norm(h, (h.size(-1),))
    h = torch.cat([h.gather(1, m.unsqueeze(-1).expand(-1, -1, h.size(-1))) for m in masks_pred])
    return F.smooth_l1_loss(z, h)


def test_loss_matches_the_authors_code() -> None:
    torch.manual_seed(0)
    B, N, D, M, Kt = 3, 16, 8, 4, 5
    teacher = torch.randn(B, N, D) * 3 + 1
    targets = torch.randint(0, N, (B, M, Kt))  # blocks may overlap, as in I-JEPA
    z_ref = torch.randn(M * B, Kt, D)  # the authors' order: block-major
    masks_pred = [targets[:, m] for m in range(M)]
    golden = _authors_loss(z_ref, teacher, masks_pred)
    p = z_ref.view(M, B, Kt, D).transpose(0, 1).reshape(B * M, Kt, D)  # ours: image-major
    ours = ijepa_loss(p, ijepa_targets(teacher, targets))
    assert torch.allclose(ours, golden, atol=1e-6)
    assert torch.allclose(ijepa_loss(p, ijepa_targets(teacher, targets), "l2"),
                          F.mse_loss(z_ref, torch.cat([F.layer_norm(teacher, (D,)).gather(
                              1, m.unsqueeze(-1).expand(-1, -1, D)) for m in masks_pred])), atol=1e-6)


def test_loss_invariants() -> None:
    p = torch.randn(8, 5, 16, requires_grad=True)
    h = ijepa_targets(torch.randn(2, 20, 16), torch.randint(0, 20, (2, 4, 5)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert math.isfinite(float(ijepa_loss(p.bfloat16(), h.bfloat16())))
    ijepa_loss(p, h).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ijepa_loss"):
        ijepa_loss(p[:, :4], h)
    with pytest.raises(ValueError, match="ijepa_targets"):
        ijepa_targets(torch.randn(2, 20, 16), torch.randint(0, 20, (2, 5)))


def test_context_encoder_sees_only_context_tokens() -> None:
    torch.manual_seed(0)
    model = _model()
    model.total_steps = lambda: 10  # no trainer attached
    batch = MultiBlockMaskCollator(32, 4, seed=0, context="all")(random_samples())
    P, lens = model.backbone.num_prefix_tokens, batch["masks_context_lens"]
    student = block_token_counts(model.backbone, lambda: model.training_step(batch, 0))
    teacher = block_token_counts(model.teacher_backbone, lambda: model.training_step(batch, 0))
    num_valid = int(lens.sum()) + P * len(lens)
    padded = (P + int(lens.max())) * len(lens)
    assert student == [num_valid if model.backbone.varlen == "pack" else padded]
    assert student[0] < len(lens) * (P + 64)
    assert teacher == [len(lens) * (P + 64)]  # the target encoder sees the whole image


def test_masks_are_made_in_workers_reproducibly(digit_shards) -> None:
    first = worker_batches(digit_shards, VIEWS, MultiBlockMaskCollator(32, 4, seed=5, context="all"))
    again = worker_batches(digit_shards, VIEWS, MultiBlockMaskCollator(32, 4, seed=5, context="all"))
    assert {int(b["mask_worker"]) for b in first} == {0, 1}
    for a, b in zip(first, again):
        assert a["key"] == b["key"]
        for k in ("masks_context", "masks_context_lens", "masks_target"):
            assert torch.equal(a[k], b[k])


@pytest.mark.parametrize("augment", [False, True])
def test_two_step_fit(fit_steps, augment: bool) -> None:
    torch.manual_seed(0)
    model = _model()
    teacher_before = [p.detach().clone() for p in model.teacher_backbone.parameters()]
    views = MaskedImageViews(input_size=32, augment=augment, min_scale=0.3)
    trainer = fit_steps(model, views, collate_fn=MultiBlockMaskCollator(32, 4), steps=2)
    assert trainer.global_step == 2
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(teacher_before, model.teacher_backbone.parameters()))
    assert all(p.grad is None and not p.requires_grad for p in model.teacher_backbone.parameters())


def test_collator_disagreeing_with_the_backbone_fails_before_the_first_step(fit_steps) -> None:
    model = _model()  # 32 px, 4-px patches
    before = [p.detach().clone() for p in model.backbone.parameters()]
    with pytest.raises(UserError, match=r"^IJEPA: the mask collator's patch_size=8 but the backbone's patch_size=4"):
        fit_steps(model, MaskedImageViews(input_size=32), collate_fn=MultiBlockMaskCollator(32, 8, min_keep=1))
    assert all(torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))
