"""DINOv2's losses: Oquab et al., 2023, "DINOv2: Learning Robust Visual Features without Supervision".

The image-level DINO term and the iBOT masked-patch term (Zhou et al., 2022) are both
cross-entropies from teacher probabilities to student logits; the teacher probabilities come from
either DINO's running-mean centring or SwAV's Sinkhorn-Knopp (DINOv2, Sec. 4). KoLeo is lightly's
``KoLeoLoss``; Gram anchoring is DINOv3's (Siméoni et al., 2025, Sec. 4.2).

Where lightly has the piece it is used: ``lightly.models.modules.center.Center`` (the all-reduced
running mean). lightly's ``IBOTPatchLoss`` fuses centring into the loss and has no Sinkhorn-Knopp
mode, hence the split here (``tests/losses/test_dinov2_loss.py`` checks both against lightly's and
the authors' code). Sinkhorn-Knopp is ours, in the log domain: lightly's ``sinkhorn`` and the
authors' ``sinkhorn_knopp_teacher`` return NaN on large teacher logits
(``test_sinkhorn_survives_large_logits``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightly.models.modules.center import Center
from torch import Tensor, nn

from sslkit.losses.precision import fp32

Centering = Literal["centering", "sinkhorn_knopp"]


class TeacherCentering(nn.Module):
    """Teacher logits -> target probabilities, by running-mean centring or Sinkhorn-Knopp.

    Args:
        output_dim: Width ``K`` of the logits.
        mode: ``"centering"`` (DINO: softmax of ``(t - c) / T``, ``c`` an EMA of batch means, updated
            after use) or ``"sinkhorn_knopp"`` (DINOv2: 3 Sinkhorn iterations on ``exp(t / T)``,
            over the global batch).
        center_momentum: EMA momentum of the centre (``"centering"`` only).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (3 in DINOv2).
    """

    def __init__(self, output_dim: int, mode: Centering = "sinkhorn_knopp", center_momentum: float = 0.9,
                 sinkhorn_iterations: int = 3) -> None:
        super().__init__()
        if mode not in ("centering", "sinkhorn_knopp"):
            raise ValueError(f"centering mode must be 'centering' or 'sinkhorn_knopp', got {mode!r}")
        self.mode = mode
        self.sinkhorn_iterations = sinkhorn_iterations
        self.center = Center(size=(1, output_dim), momentum=center_momentum)

    @torch.no_grad()
    @fp32
    def forward(self, teacher_logits: Tensor, teacher_temp: float) -> Tensor:
        """``(M, K)`` logits -> ``(M, K)`` fp32 probabilities (rows sum to 1); updates the centre."""
        k = self.center.value.shape[-1]
        if teacher_logits.ndim != 2 or teacher_logits.shape[1] != k:
            raise ValueError(f"TeacherCentering(output_dim={k}): expected (M, {k}) logits, got {tuple(teacher_logits.shape)}")
        logits = teacher_logits.detach().float()
        if self.mode == "sinkhorn_knopp":
            return sinkhorn_knopp(logits, teacher_temp, self.sinkhorn_iterations)
        probs = F.softmax((logits - self.center.value) / teacher_temp, dim=-1)
        self.center.update(logits)
        return probs


def _all_reduce_logsumexp(x: Tensor, dim: int | None = None) -> Tensor:
    """``logsumexp`` over ``dim`` (all dims if ``None``) and over every rank, without overflow."""
    m = (x.amax() if dim is None else x.amax(dim=dim, keepdim=True)).detach().clone()
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed:
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
    total = (x - m).exp().sum() if dim is None else (x - m).exp().sum(dim=dim, keepdim=True)
    if distributed:
        dist.all_reduce(total)
    return total.log() + m


@torch.no_grad()
@fp32
def sinkhorn_knopp(logits: Tensor, teacher_temp: float, iterations: int = 3) -> Tensor:
    """DINOv2's ``sinkhorn_knopp_teacher`` (SwAV's algorithm) over the global batch, in the log domain.

    The same iterations as the authors' code and lightly's ``sinkhorn`` (normalise the whole matrix,
    then alternately each prototype's mass to ``1 / K`` over the global batch and each sample's to
    ``1 / B``), on ``log Q`` instead of ``Q = exp(t / T)``: theirs overflows to NaN once a logit passes
    ``88 * T`` (3.5 at ``T = 0.04``) and underflows a prototype row to 0/0 once it lies ``103 * T``
    below the rest.

    Args:
        logits: ``(B, K)`` teacher logits of this rank.
        teacher_temp: Temperature ``T``.
        iterations: Sinkhorn iterations (3).

    Returns:
        ``(B, K)`` fp32 assignments, each row summing to 1.
    """
    log_q = logits.float().t() / teacher_temp  # (K, B)
    num_prototypes = log_q.shape[0]
    num_samples = log_q.new_tensor(float(log_q.shape[1]))
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(num_samples)
    log_q = log_q - _all_reduce_logsumexp(log_q)
    for _ in range(iterations):
        log_q = log_q - _all_reduce_logsumexp(log_q, dim=1) - math.log(num_prototypes)
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - num_samples.log()
    return (log_q + num_samples.log()).exp().t()


def _check_logits(teacher_probs: Tensor, student_logits: Tensor, name: str) -> None:
    if teacher_probs.shape != student_logits.shape or student_logits.ndim != 2:
        raise ValueError(f"{name}: teacher and student need the same (M, K) shape, got "
                         f"{tuple(teacher_probs.shape)} and {tuple(student_logits.shape)}")


@fp32
def cross_entropy(teacher_probs: Tensor, student_logits: Tensor, student_temp: float) -> Tensor:
    """Per-row ``-sum_k t_k log softmax(s / T_s)_k``, ``(M,)``, in fp32."""
    _check_logits(teacher_probs, student_logits, "cross_entropy")
    log_p = F.log_softmax(student_logits.float() / student_temp, dim=-1)
    return -(teacher_probs.detach().float() * log_p).sum(dim=-1)


def dino_image_loss(teacher_probs: list[Tensor], student_logits: list[Tensor], student_temp: float = 0.1) -> Tensor:
    """DINO's multi-crop term: mean over (teacher crop ``i``, student crop ``v != i``) of the batch-mean CE.

    Args:
        teacher_probs: One ``(B, K)`` probability tensor per global crop.
        student_logits: One ``(B, K)`` logit tensor per crop, the global crops first in the same order.
        student_temp: Student temperature (0.1).
    """
    if not teacher_probs or len(student_logits) < len(teacher_probs):
        raise ValueError(f"dino_image_loss: need >= 1 teacher crop and the student's crops to start with them, "
                         f"got {len(teacher_probs)} teacher and {len(student_logits)} student crops")
    terms = [cross_entropy(t, s, student_temp).mean()
             for i, t in enumerate(teacher_probs) for v, s in enumerate(student_logits) if v != i]
    if not terms:
        raise ValueError("dino_image_loss: one global crop and no local crop leave no (teacher, other crop) pair")
    return torch.stack(terms).mean()


def ibot_patch_loss(teacher_probs: Tensor, student_logits: Tensor, masks: Tensor, student_temp: float = 0.1) -> Tensor:
    """iBOT's masked-patch term: per image the mean CE over its masked patches, averaged over all images.

    Images without a masked patch count as zero (DINOv2's ``forward_masked`` and lightly's
    ``IBOTPatchLoss`` divide by the number of images, masked or not).

    Args:
        teacher_probs: ``(M, K)`` teacher probabilities of the masked patches, in ``masks.nonzero()`` order.
        student_logits: ``(M, K)`` student logits of the same patches.
        masks: ``(B, N)`` bool, ``True`` where a patch was masked (``M = masks.sum()``).
        student_temp: Student temperature (0.1).
    """
    if masks.ndim != 2 or masks.dtype != torch.bool or int(masks.sum()) != student_logits.shape[0]:
        raise ValueError(f"ibot_patch_loss: masks must be (B, N) bool with one True per patch row, got "
                         f"{tuple(masks.shape)} {masks.dtype} with {int(masks.sum())} True for {student_logits.shape[0]} rows")
    ce = cross_entropy(teacher_probs, student_logits, student_temp)  # (M,)
    weight = (1.0 / masks.sum(dim=1, keepdim=True).clamp(min=1)).expand_as(masks)[masks]  # (M,)
    return (ce * weight).sum() / masks.shape[0]


@fp32
def gram_anchoring_loss(student_patches: Tensor, gram_teacher_patches: Tensor) -> Tensor:
    """DINOv3's Gram anchoring: MSE between the patch-similarity (Gram) matrices of student and Gram teacher.

    Both are l2-normalised per patch and compared per image (``img_level=True``, DINOv3's default),
    negative similarities kept.

    Args:
        student_patches: ``(B, N, D)`` student patch features.
        gram_teacher_patches: ``(B, N, D)`` patch features of the Gram teacher (an earlier teacher).
    """
    if student_patches.shape != gram_teacher_patches.shape or student_patches.ndim != 3:
        raise ValueError(f"gram_anchoring_loss: expected two equal (B, N, D) shapes, got "
                         f"{tuple(student_patches.shape)} and {tuple(gram_teacher_patches.shape)}")
    s = F.normalize(student_patches.float(), dim=-1)
    t = F.normalize(gram_teacher_patches.detach().float(), dim=-1)
    return F.mse_loss(s @ s.transpose(1, 2), t @ t.transpose(1, 2))
