"""Equivariance of a frozen backbone: how much a transformation's effect survives in the features.

- Rotation prediction (E-SSL, Dangovski et al., 2022, Sec. 3): top-1 of a linear probe telling the
  four rotations of held-out images apart from frozen features; 25% is chance (fully invariant).
- Orthogonal Procrustes residual (CARE, Gupta et al., 2023, Sec. 5): how far the best orthogonal
  map ``R`` sends the embeddings of ``x`` to those of ``t(x)``,
  ``min_R ||Z R - Z_t||_F / ||Z_t||_F`` with ``R = U V^T`` from the SVD ``Z^T Z_t = U S V^T``
  (Schönemann, 1966). 0 when ``t`` acts as a rotation/reflection of the embedding space.

Usable on any checkpoint: ``load_objective(path).eval_backbone()`` is a backbone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslkit.evaluation.linear_probe import logistic_regression_probe
from sslkit.transforms.rotation import four_fold_rotations


@torch.no_grad()
def embed(backbone: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """Pooled features ``(N, D)`` of ``images`` ``(N, C, H, W)`` in eval mode, on the backbone's device."""
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    try:
        feats = [
            backbone(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)
        ]
    finally:
        backbone.train(was_training)
    return torch.cat(feats)


def orthogonal_procrustes(z: Tensor, z_t: Tensor) -> Tensor:
    """The orthogonal ``R`` ``(D, D)`` minimising ``||z R - z_t||_F`` for ``z``, ``z_t`` ``(N, D)``."""
    if z.ndim != 2 or z.shape != z_t.shape:
        raise ValueError(
            f"orthogonal_procrustes: expected two (N, D) tensors, got {tuple(z.shape)} and {tuple(z_t.shape)}"
        )
    u, _, vh = torch.linalg.svd(z.double().T @ z_t.double())
    return (u @ vh).to(z.dtype)


def procrustes_residual(z: Tensor, z_t: Tensor, normalize: bool = True) -> float:
    """Relative residual ``||z R - z_t||_F / ||z_t||_F`` of the best orthogonal ``R``.

    Args:
        z: Embeddings of the original images ``(N, D)``.
        z_t: Embeddings of the transformed images ``(N, D)``, row for row.
        normalize: L2-normalise rows first (compare directions on the sphere, as CARE does).
    """
    if normalize:
        z, z_t = F.normalize(z.double(), dim=1), F.normalize(z_t.double(), dim=1)
    r = orthogonal_procrustes(z.double(), z_t.double())
    return float(torch.linalg.norm(z.double() @ r - z_t.double()) / torch.linalg.norm(z_t.double()))


def transform_procrustes_residual(
    backbone: nn.Module, images: Tensor, transform: Callable[[Tensor], Tensor], batch_size: int = 256
) -> float:
    """:func:`procrustes_residual` between embeddings of ``images`` and ``transform(images)``.

    ``transform`` acts on the whole batch at once (e.g. ``lambda x: torch.rot90(x, 1, (2, 3))`` or a
    torchvision v2 transform, which draws one set of parameters per call).
    """
    return procrustes_residual(embed(backbone, images, batch_size), embed(backbone, transform(images), batch_size))


def rotation_prediction_accuracy(
    backbone: nn.Module, train_images: Tensor, test_images: Tensor, batch_size: int = 256, seed: int = 0
) -> float:
    """Top-1 (%) of a logistic-regression probe predicting four-fold rotations from frozen features.

    Both sets are used at all four rotations (balanced labels); the probe's ``C`` is chosen on a
    held-out tenth of the training features (``logistic_regression_probe``).
    """
    x_train, y_train = four_fold_rotations(train_images)
    x_test, y_test = four_fold_rotations(test_images)
    result = logistic_regression_probe(
        embed(backbone, x_train, batch_size), y_train, embed(backbone, x_test, batch_size), y_test, seed=seed
    )
    return float(result["best"]["test_top1"])
