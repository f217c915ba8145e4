"""DINO loss: Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers"."""

from __future__ import annotations

import torch
from lightly.loss import DINOLoss as LightlyDINOLoss

from sslkit.losses.precision import fp32


class DINOLoss(LightlyDINOLoss):
    """lightly's ``DINOLoss`` (cross-entropy to the centred, sharpened teacher; holds the centre)
    with the view lists checked before stacking and the teacher detached (as the official code does;
    lightly would backpropagate into teacher outputs that carry gradients).

    The teacher temperature is passed per call (``teacher_temp=``) from the objective's schedule.

    Args:
        output_dim: Width ``K`` of the head output (the centre's size).
        teacher_temp: Teacher temperature used when the caller passes none.
        student_temp: Student temperature (0.1 in the paper).
        center_momentum: EMA momentum of the centre (0.9 in the paper).
    """

    def __init__(self, output_dim: int, teacher_temp: float = 0.07, student_temp: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        super().__init__(output_dim=output_dim, warmup_teacher_temp=teacher_temp, teacher_temp=teacher_temp,
                         warmup_teacher_temp_epochs=1, student_temp=student_temp, center_momentum=center_momentum)

    @fp32
    def forward(self, teacher_out: list[torch.Tensor], student_out: list[torch.Tensor],
                teacher_temp: float | None = None, epoch: int | None = None) -> torch.Tensor:
        """Mean cross-entropy over (teacher view, other student view) pairs.

        Args:
            teacher_out: One ``(B, K)`` tensor per global view.
            student_out: One ``(B, K)`` tensor per view, the global views first in the teacher's order.
            teacher_temp: Teacher temperature for this step.
        """
        k = self.center.shape[-1]
        shapes = [tuple(t.shape) for t in (*teacher_out, *student_out)]
        if not teacher_out or any(len(s) != 2 or s[1] != k or s[0] != shapes[0][0] for s in shapes):
            raise ValueError(f"DINOLoss(output_dim={k}): expected (B, {k}) tensors for every view, got {shapes}")
        if len(student_out) < len(teacher_out):
            raise ValueError(f"DINOLoss: student views must start with the {len(teacher_out)} teacher views, "
                             f"got {len(student_out)}")
        teacher_out = [t.detach() for t in teacher_out]
        return super().forward(teacher_out, student_out, teacher_temp=teacher_temp, epoch=epoch)
