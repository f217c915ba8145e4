"""MSN: the student encodes only the anchor's kept patches, the EMA teacher the unmasked target view;
prototypes and teacher move."""

from __future__ import annotations

import torch

from sslkit.masking import RandomMaskCollator
from sslkit.objectives import MSN, load_objective
from tests.objectives.new_methods import TINY_VIT_DYNAMIC, moved, multicrop_views, record_input_sizes, snapshot


def test_two_step_masked_fit(fit_ema_steps, tmp_path) -> None:
    torch.manual_seed(0)
    model = MSN(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT_DYNAMIC, proj_hidden_dim=64,
                proj_output_dim=16, num_prototypes=12, warmup_epochs=0)
    tokens_seen = record_input_sizes(model.backbone.blocks)
    teacher_tokens = record_input_sizes(model.teacher_backbone.blocks)
    prototypes = snapshot(model.prototypes)
    trainer = fit_ema_steps(model, multicrop_views(num_local=2),
                            collate_fn=RandomMaskCollator(input_size=32, patch_size=8, mask_ratio=0.25))
    assert moved(prototypes, model.prototypes)
    # student: anchor with 12 of 16 patches kept (+ cls), then both 16-px focal crops in one pass (4 patches)
    assert tokens_seen == [(8, 13, 48), (16, 5, 48)] * 2
    assert teacher_tokens == [(8, 17, 48)] * 2  # teacher: the unmasked target view
    trainer.save_checkpoint(tmp_path / "msn.ckpt")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(load_objective(tmp_path / "msn.ckpt").eval_backbone()(x), model.eval().eval_backbone()(x))
