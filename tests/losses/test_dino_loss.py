"""DINO loss: golden values over two steps (the centre carries over) from the official ``main_dino.py``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslkit.losses import DINOLoss


class _OfficialDINOLoss:
    """``DINOLoss`` of facebookresearch/dino ``main_dino.py`` (one process, temperature per call)."""

    def __init__(self, out_dim: int, ncrops: int, student_temp: float = 0.1, center_momentum: float = 0.9) -> None:
        self.student_temp, self.center_momentum, self.ncrops = student_temp, center_momentum, ncrops
        self.center = torch.zeros(1, out_dim)

    def __call__(self, student_output: torch.Tensor, teacher_output: torch.Tensor, temp: float) -> torch.Tensor:
        student_out = (student_output / self.student_temp).chunk(self.ncrops)
        teacher_out = F.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)
        total_loss, n_loss_terms = 0, 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                total_loss += torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1).mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True) / len(teacher_output)
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)
        return total_loss


def _views(num_views: int, batch: int = 4, k: int = 32) -> list[torch.Tensor]:
    return [torch.randn(batch, k) for _ in range(num_views)]


def test_two_steps_match_official_code() -> None:
    torch.manual_seed(0)
    ours, official = DINOLoss(32), _OfficialDINOLoss(32, ncrops=5)
    for temp in (0.04, 0.055):  # the centre from step 1 is used in step 2
        teacher, student = _views(2), _views(5)
        expected = official(torch.cat(student), torch.cat(teacher), temp)
        torch.testing.assert_close(ours(teacher, student, teacher_temp=temp), expected)
    torch.testing.assert_close(ours.center.reshape(1, -1), official.center)
    assert math.isclose(float(expected), 22.5170021, rel_tol=1e-5)  # pinned (seed 0, second step)


def test_loss_invariants() -> None:
    torch.manual_seed(0)
    teacher = [v.requires_grad_() for v in _views(2)]
    student = [v.requires_grad_() for v in _views(4)]
    DINOLoss(32)(teacher, student, teacher_temp=0.04).backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    assert all(t.grad is None for t in teacher)  # the teacher is a target, never a gradient path
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(DINOLoss(32)([t.detach() for t in teacher], [s.detach() for s in student]))


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"output_dim=32.*\(4, 16\)"):
        DINOLoss(32)(_views(2), _views(3)[:2] + [torch.randn(4, 16)])
    with pytest.raises(ValueError, match="output_dim=32"):
        DINOLoss(32)(_views(2), _views(3)[:2] + [torch.randn(3, 32)])
    with pytest.raises(ValueError, match="start with the 2 teacher views"):
        DINOLoss(32)(_views(2), _views(1))
