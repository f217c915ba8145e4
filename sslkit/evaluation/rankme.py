"""RankMe: the effective rank of a batch of embeddings, a label-free collapse signal.

Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the downstream performance of pretrained
self-supervised representations by their rank", ICML 2023, eq. (1):

    RankMe(Z) = exp(-sum_k p_k log p_k),   p_k = sigma_k(Z) / ||sigma(Z)||_1 + eps

over the singular values ``sigma`` of the embedding matrix ``Z`` ``(N, D)``. It lies in
``[1, min(N, D)]``; a collapsed representation scores near 1. Use ``N`` well above ``D``.
"""

from __future__ import annotations

import torch

from sslkit.evaluation.knn import ArrayLike


def rankme(z: ArrayLike, eps: float = 1e-7) -> float:
    """Effective rank of embeddings ``z`` ``(N, D)`` (computed in float64)."""
    z = torch.as_tensor(z).detach().to("cpu", torch.float64)
    if z.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {tuple(z.shape)}")
    sigma = torch.linalg.svdvals(z)
    p = sigma / sigma.sum() + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))
