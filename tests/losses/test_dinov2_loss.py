"""DINOv2 / iBOT losses against the authors' ``dinov2/loss/*.py`` (one process) and lightly's iBOT/KoLeo;
DINOv3's Gram anchoring against its ``GramLoss``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import IBOTPatchLoss, KoLeoLoss

from sslkit.losses import TeacherCentering, dino_image_loss, gram_anchoring_loss, ibot_patch_loss


def _official_sinkhorn_knopp_teacher(teacher_output: torch.Tensor, teacher_temp: float, n_iterations: int = 3,
                                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``DINOLoss.sinkhorn_knopp_teacher`` of facebookresearch/dinov2 (world size 1; fp32 there)."""
    Q = torch.exp(teacher_output.to(dtype) / teacher_temp).t()
    B, K = Q.shape[1], Q.shape[0]
    Q /= torch.sum(Q)
    for _ in range(n_iterations):
        Q /= torch.sum(Q, dim=1, keepdim=True)
        Q /= K
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B
    Q *= B
    return Q.t()


def _official_dino_loss(student_output_list: list[torch.Tensor], teacher_out_softmaxed_centered_list: list[torch.Tensor],
                        student_temp: float = 0.1) -> torch.Tensor:
    """``DINOLoss.forward`` of dinov2: the sum over all (student, teacher) crop pairs."""
    total_loss = 0
    for s in student_output_list:
        lsm = F.log_softmax(s / student_temp, dim=-1)
        for t in teacher_out_softmaxed_centered_list:
            total_loss -= torch.sum(t * lsm, dim=-1).mean()
    return total_loss


def _official_ibot_forward_masked(student_patch_tokens_masked: torch.Tensor, teacher_patch_tokens_masked: torch.Tensor,
                                  student_masks_flat: torch.Tensor, student_temp: float = 0.1) -> torch.Tensor:
    """``iBOTPatchLoss.forward_masked`` of dinov2."""
    loss = torch.sum(teacher_patch_tokens_masked * F.log_softmax(student_patch_tokens_masked / student_temp, dim=-1), dim=-1)
    masks_weight = (1 / student_masks_flat.sum(-1).clamp(min=1.0)).unsqueeze(-1).expand_as(student_masks_flat)[student_masks_flat]
    return -(loss * masks_weight).sum() / student_masks_flat.shape[0]


def _official_koleo(student_output: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``KoLeoLoss.forward`` of dinov2."""
    student_output = F.normalize(student_output, eps=eps, p=2, dim=-1)
    dots = torch.mm(student_output, student_output.t())
    n = student_output.shape[0]
    dots.view(-1)[:: (n + 1)].fill_(-1)
    _, nn_idx = torch.max(dots, dim=1)
    distances = torch.nn.PairwiseDistance(2, eps=eps)(student_output, student_output[nn_idx])
    return -torch.log(distances + eps).mean()


def test_dino_term_with_sinkhorn_matches_dinov2() -> None:
    torch.manual_seed(0)
    b, k, n_local = 4, 32, 3
    teacher_logits = torch.randn(2 * b, k)
    student_global, student_local = torch.randn(2 * b, k), torch.randn(n_local * b, k)
    probs = TeacherCentering(k, mode="sinkhorn_knopp")(teacher_logits, teacher_temp=0.05)
    expected_probs = _official_sinkhorn_knopp_teacher(teacher_logits, 0.05)
    torch.testing.assert_close(probs, expected_probs)
    # dinov2's ssl_meta_arch: local crops vs both teacher crops, each global crop vs the *other* teacher
    # crop, both sums divided by the number of terms.
    t = list(expected_probs.chunk(2))
    local = _official_dino_loss(list(student_local.chunk(n_local)), t)
    glob = _official_dino_loss([student_global], [torch.cat(t[::-1])]) * 2  # dinov2's loss_scales = 2
    expected = (local + glob) / (n_local * 2 + 2)
    ours = dino_image_loss(t, [*student_global.chunk(2), *student_local.chunk(n_local)])
    torch.testing.assert_close(ours, expected)
    assert math.isclose(float(ours), 24.4279537, rel_tol=1e-5)  # pinned (seed 0)


def test_centering_mode_matches_lightly_ibot_patch_loss_over_two_steps() -> None:
    torch.manual_seed(0)
    k = 16
    centering, lightly_loss = TeacherCentering(k, mode="centering", center_momentum=0.9), IBOTPatchLoss(k, center_momentum=0.9)
    for temp in (0.04, 0.06):  # the centre from step 1 is used in step 2
        masks = torch.rand(3, 2, 4) < 0.4
        masks[0] = False  # an image without masked patches counts in the mean as zero
        m = int(masks.sum())
        teacher, student = torch.randn(m, k), torch.randn(m, k)
        expected = lightly_loss(teacher, student, masks, teacher_temp=temp)
        ours = ibot_patch_loss(centering(teacher, temp), student, masks.flatten(1))
        torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(centering.center.value, lightly_loss.center.value)


def test_ibot_term_matches_dinov2_forward_masked() -> None:
    torch.manual_seed(1)
    masks = torch.rand(4, 16) < 0.3
    m = int(masks.sum())
    teacher_probs = _official_sinkhorn_knopp_teacher(torch.randn(m, 32), 0.07)
    student = torch.randn(m, 32)
    torch.testing.assert_close(ibot_patch_loss(teacher_probs, student, masks),
                               _official_ibot_forward_masked(student, teacher_probs, masks))


def test_lightly_koleo_matches_dinov2() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 24)
    torch.testing.assert_close(KoLeoLoss()(x), _official_koleo(x))


def test_gram_anchoring_matches_dinov3_gram_loss() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    sn, tn = F.normalize(s, dim=-1), F.normalize(t, dim=-1)
    expected = torch.nn.MSELoss()(sn @ sn.transpose(-1, -2), tn @ tn.transpose(-1, -2))  # GramLoss(img_level=True)
    torch.testing.assert_close(gram_anchoring_loss(s, t), expected)
    assert float(gram_anchoring_loss(t, t)) == pytest.approx(0.0, abs=1e-7)


def test_sinkhorn_survives_large_logits() -> None:
    torch.manual_seed(0)
    logits = torch.randn(8, 32) * 4  # a learnable weight-norm scale lets DINOv2 heads reach such logits
    assert not torch.isfinite(_official_sinkhorn_knopp_teacher(logits, 0.04)).all()  # the authors' code: NaN
    probs = TeacherCentering(32, mode="sinkhorn_knopp")(logits, 0.04)
    assert torch.isfinite(probs).all()
    # float64 has the range the fp32 original lacks: the same iterations agree there
    torch.testing.assert_close(probs, _official_sinkhorn_knopp_teacher(logits, 0.04, dtype=torch.float64).float())


def test_invariants() -> None:
    torch.manual_seed(0)
    probs = TeacherCentering(4, mode="sinkhorn_knopp", sinkhorn_iterations=20)(torch.randn(64, 4), 0.5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(64))  # rows are distributions
    torch.testing.assert_close(probs.sum(0), torch.full((4,), 16.0), rtol=1e-3, atol=1e-3)  # equipartition
    a, b = torch.randn(4, 32), torch.randn(4, 32)
    ta, tb = [TeacherCentering(32, mode="centering")(x, 0.04) for x in (a, b)]
    s = [torch.randn(4, 32, requires_grad=True) for _ in range(2)]
    loss = dino_image_loss([ta, tb], s)
    torch.testing.assert_close(loss, dino_image_loss([tb, ta], s[::-1]))  # symmetric in the crop order
    loss.backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in s)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = torch.randn(8, 32) * 10
        assert torch.isfinite(dino_image_loss(list(TeacherCentering(32)(logits, 0.04).chunk(2)), list(logits.chunk(2))))
        masks = torch.rand(2, 4) < 0.5
        masks[0, 0] = True
        m = int(masks.sum())
        assert torch.isfinite(ibot_patch_loss(TeacherCentering(32)(torch.randn(m, 32), 0.04), torch.randn(m, 32), masks))


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"output_dim=32.*\(4, 16\)"):
        TeacherCentering(32)(torch.randn(4, 16), 0.04)
    with pytest.raises(ValueError, match=r"\(4, 32\) and \(3, 32\)"):
        dino_image_loss([torch.rand(4, 32)], [torch.randn(4, 32), torch.randn(3, 32)])
    with pytest.raises(ValueError, match="one True per patch row"):
        ibot_patch_loss(torch.rand(3, 8), torch.randn(3, 8), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="centering mode"):
        TeacherCentering(8, mode="softmax")  # type: ignore[arg-type]
