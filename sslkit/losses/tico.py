"""TiCo loss: Zhu et al., 2022, "TiCo: Transformation Invariance and Covariance Contrast", Algorithm 1."""

from __future__ import annotations

import torch
from lightly.loss import TiCoLoss as LightlyTiCoLoss

from sslkit.losses.precision import fp32


class TiCoLoss(LightlyTiCoLoss):
    """lightly's ``TiCoLoss`` with its running covariance ``C`` kept as a buffer.

    lightly stores ``C`` as a plain attribute created on the first call, so it is missing from the
    state dict: a resumed run restarts the covariance EMA from zero. Here ``C`` is a ``(D, D)``
    buffer (zeros at the start, exactly lightly's initial value) that checkpoints and resumes.

    Args:
        dim: Projection width ``D``.
        beta: EMA coefficient of the covariance (0.9 in the paper).
        rho: Weight of the covariance-contrast term (8.0 in the paper).
        gather_distributed: Gather projections from all ranks (lightly's gather, with gradients).
    """

    def __init__(self, dim: int, beta: float = 0.9, rho: float = 8.0, gather_distributed: bool = True) -> None:
        super().__init__(beta=beta, rho=rho, gather_distributed=gather_distributed)
        del self.C  # lightly's plain attribute, replaced by a buffer of the same name
        self.register_buffer("C", torch.zeros(dim, dim))

    @fp32
    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor, update_covariance_matrix: bool = True) -> torch.Tensor:
        """Loss of student projections ``z_a`` against teacher projections ``z_b``, both ``(B, D)``."""
        if z_a.ndim != 2 or z_a.shape != z_b.shape or z_a.shape[1] != self.C.shape[0]:
            raise ValueError(
                f"TiCoLoss(dim={self.C.shape[0]}): expected two (B, {self.C.shape[0]}) tensors, "
                f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
            )
        return super().forward(z_a, z_b, update_covariance_matrix)
