"""CARE's orthogonal-equivariance loss: Gupta, Robinson, Lim, Villar & Jegelka, 2023 (ICLR 2024),
"Structuring Representation Geometry with Rotationally Equivariant Contrastive Learning", Sec. 3.

If an augmentation ``a`` acts on the embedding sphere as an orthogonal map ``R_a``, inner products
between embeddings of images that received the *same* augmentation are preserved. The paper's
equivariance loss penalises their change, for two augmentations ``a, a'`` shared by a set of images:

    L_equi(f) = E_{a, a'} E_{x, x'} [ ( f(a x)^T f(a x') - f(a' x)^T f(a' x') )^2 ]

and CARE minimises ``L_InfoNCE + lambda * L_equi``. Its minimisers make every augmentation act as
an element of O(d) (the paper's Theorem). The estimator below is the authors' ``equivariance_loss``
(Sharut/CARE, ``cifar10_cifar100_stl10/utils.py``): within each group of ``n`` images sharing
``(a, a')``, the squared Frobenius distance between the off-diagonal Gram entries of the two views,
``2 / n * sum_{i != j} (...)^2``, averaged over groups.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sslkit.losses.precision import fp32


@fp32
def orthogonal_equivariance_loss(z_1: Tensor, z_2: Tensor, group_size: int, normalize: bool = True) -> Tensor:
    """CARE's ``L_equi`` on two views whose rows are grouped by shared augmentation.

    Args:
        z_1: Embeddings ``(B, D)`` of the images under augmentation ``a_g`` of their group ``g``.
        z_2: Embeddings ``(B, D)`` of the same images under ``a'_g``; rows ``g * n ... (g + 1) * n - 1``
            form group ``g``.
        group_size: Images per group ``n`` (``B`` must be a multiple; the authors use 16 of 256).
        normalize: L2-normalise rows first (the authors' model outputs normalised embeddings).

    Returns:
        Scalar loss.
    """
    if z_1.ndim != 2 or z_1.shape != z_2.shape:
        raise ValueError(
            f"orthogonal_equivariance_loss: expected two (B, D) tensors, got {tuple(z_1.shape)} and {tuple(z_2.shape)}"
        )
    B = z_1.shape[0]
    if group_size < 2 or B % group_size:
        raise ValueError(f"orthogonal_equivariance_loss: batch {B} is not a multiple of group_size {group_size} >= 2")
    if normalize:
        z_1, z_2 = F.normalize(z_1, dim=-1), F.normalize(z_2, dim=-1)
    g_1 = z_1.view(-1, group_size, z_1.shape[1])  # (G, n, D)
    g_2 = z_2.view(-1, group_size, z_2.shape[1])
    diff = g_1 @ g_1.transpose(1, 2) - g_2 @ g_2.transpose(1, 2)  # (G, n, n); the diagonal is 0 when normalised
    off_diagonal = ~torch.eye(group_size, dtype=torch.bool, device=z_1.device)
    return 2.0 * (diff.pow(2) * off_diagonal).sum(dim=(1, 2)).mean() / group_size
