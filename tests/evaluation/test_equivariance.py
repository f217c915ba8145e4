"""Equivariance metrics: Procrustes against SciPy, rotation probes on known-equivariant/invariant maps, a checkpoint."""

from __future__ import annotations

import pytest
import torch
from scipy.linalg import orthogonal_procrustes as scipy_procrustes
from torch import nn

from sslkit.evaluation.equivariance import (
    orthogonal_procrustes,
    procrustes_residual,
    rotation_prediction_accuracy,
    transform_procrustes_residual,
)
from sslkit.objectives import SimCLR, load_objective


def test_procrustes_matches_scipy_and_vanishes_for_orthogonal_maps() -> None:
    torch.manual_seed(0)
    z, z_t = torch.randn(50, 8, dtype=torch.float64), torch.randn(50, 8, dtype=torch.float64)
    expected, _ = scipy_procrustes(z.numpy(), z_t.numpy())
    assert torch.allclose(orthogonal_procrustes(z, z_t), torch.from_numpy(expected), atol=1e-10)
    q = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0]
    assert procrustes_residual(z, z @ q) < 1e-10
    assert procrustes_residual(z, z_t) > 0.5  # unrelated embeddings
    with pytest.raises(ValueError, match="orthogonal_procrustes"):
        orthogonal_procrustes(z, z_t[:, :4])


class _Flatten(nn.Module):
    def __init__(self, pool: bool) -> None:
        super().__init__()
        self.pool = pool
        self.dummy = nn.Parameter(torch.zeros(()))  # embed() reads the device from a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if self.pool else x.flatten(1)


def _oriented_images(num: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(num, 3, 8, 8, generator=g) * 0.2
    x[:, :, 0, :] += 1.0  # a bright top row: orientation is visible in raw pixels
    return x


def test_rotation_probe_separates_equivariant_from_invariant_features() -> None:
    train, test = _oriented_images(64), _oriented_images(32)
    assert rotation_prediction_accuracy(_Flatten(pool=False), train, test) > 95.0  # pixels keep orientation
    assert rotation_prediction_accuracy(_Flatten(pool=True), train, test) < 50.0  # channel means cannot (chance 25)


def test_metrics_run_on_a_checkpoint(tmp_path) -> None:
    import lightning as L

    model = SimCLR(backbone="vit_tiny_patch16_224",
                   backbone_kwargs={"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 24, "num_heads": 2},
                   proj_hidden_dim=16, proj_output_dim=8)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    backbone = load_objective(tmp_path / "m.ckpt").eval_backbone()
    images = torch.rand(16, 3, 32, 32)
    residual = transform_procrustes_residual(backbone, images, lambda x: torch.rot90(x, 1, (2, 3)))
    assert 0.0 <= residual < 2.0
    assert 0.0 <= rotation_prediction_accuracy(backbone, images, images[:8]) <= 100.0
