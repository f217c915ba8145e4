"""Batched device augmentation: parameter distributions, and outputs equal torchvision's per-image
functional transforms for the same parameters (float images: 1e-4 after normalisation unless stated)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from sslkit.transforms.gpu import (
    BatchViews,
    UInt8Image,
    ViewParams,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    gaussian_blur,
    resized_crop,
    sample_crops,
)

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _images(b: int = 6, h: int = 40, w: int = 48, seed: int = 0) -> torch.Tensor:
    """Smooth-ish uint8 images (noise upsampled) so colour ops see realistic, varied pixels."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(b, 3, h // 4, w // 4, generator=g)
    big = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    noisy = (big + 0.1 * torch.rand(b, 3, h, w, generator=g)).clamp(0, 1)
    return (noisy * 255).round().to(torch.uint8)


def _reference_view(img: torch.Tensor, p: ViewParams, n: int, views: BatchViews) -> torch.Tensor:
    """One view with torchvision's functional transforms, float pipeline, the parameters of row ``n``."""
    top, left, h, w = (int(v) for v in p.crop[n])
    x = TF.resized_crop(img.float() / 255, top, left, h, w, [views.input_size] * 2, antialias=True)
    if p.flip[n]:
        x = TF.horizontal_flip(x)
    if p.jitter[n]:
        ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for op in p.jitter_order[n].tolist():
            x = ops[op](x, float(p.jitter_factors[n, op]))
    if p.gray[n]:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if p.blur_sigma[n] > 0:
        s = float(p.blur_sigma[n])
        x = TF.gaussian_blur(x, [views.blur_kernel_size] * 2, [s, s])
    if p.solarize[n]:
        x = TF.solarize(x, 128 / 255)
    return TF.normalize(x, list(MEAN), list(STD))


def test_pipeline_matches_torchvision_per_image() -> None:
    views = BatchViews(input_size=24, num_views=2, min_scale=0.2, blur_prob=(1.0, 0.3), solarize_prob=(0.0, 0.5),
                       cj_prob=0.9, gray_prob=0.3, mean=MEAN, std=STD)
    images = _images(b=8)
    g = torch.Generator().manual_seed(3)
    params = views.sample(8, 40, 48, g)
    assert params.jitter.any() and params.gray.any() and (params.blur_sigma > 0).any() and params.solarize.any()
    out = views.apply(images, params)
    assert len(out) == 2 and out[0].shape == (8, 3, 24, 24) and out[0].dtype == torch.float32
    for v in range(2):
        for b in range(8):
            ref = _reference_view(images[b], params, v * 8 + b, views)
            # Solarize thresholds a continuous value: a pixel within float error of 128/255 may flip.
            diff = (out[v][b] - ref).abs()
            assert (diff > 1e-3).float().mean() < 1e-3, (v, b, diff.max())
            assert diff.median() < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_resized_crop_and_flip_match_torchvision(dtype: torch.dtype) -> None:
    images = _images(b=5, h=37, w=53)
    g = torch.Generator().manual_seed(0)
    crop = sample_crops(5, 37, 53, (0.08, 1.0), (3 / 4, 4 / 3), g)
    crop[0] = torch.tensor([0, 0, 37, 53])  # whole image, downscaled (antialiasing matters)
    crop[1] = torch.tensor([30, 40, 7, 13])  # a tiny crop at the corner, upscaled
    flip = torch.tensor([False, True, False, True, True])
    for size in (16, 40):
        out = resized_crop(images, crop.unsqueeze(0), flip.unsqueeze(0), size)[0] * 255  # (B, C, S, S)
        for b in range(5):
            top, left, h, w = crop[b].tolist()
            ref = TF.resized_crop(images[b].to(dtype), top, left, h, w, [size, size], antialias=True).float()
            ref = TF.horizontal_flip(ref) if flip[b] else ref
            # float: same filter, fp32 rounding; uint8: torchvision rounds its two passes to integers.
            tol = 1e-3 if dtype == torch.float32 else 1.01
            assert (out[b] - ref).abs().max() <= tol, (size, b, (out[b] - ref).abs().max())


def test_color_ops_match_torchvision() -> None:
    x = _images(b=4).float() / 255
    factors = torch.tensor([0.2, 0.9, 1.0, 1.7])
    shifts = torch.tensor([-0.5, -0.13, 0.0, 0.31])
    for ours, theirs, f in (
        (adjust_brightness, TF.adjust_brightness, factors),
        (adjust_contrast, TF.adjust_contrast, factors),
        (adjust_saturation, TF.adjust_saturation, factors),
        (adjust_hue, TF.adjust_hue, shifts),
    ):
        out = ours(x.clone(), f)
        for b in range(4):
            torch.testing.assert_close(out[b], theirs(x[b], float(f[b])), atol=1e-5, rtol=0, msg=ours.__name__)


def test_gaussian_blur_matches_torchvision() -> None:
    x = _images(b=3, h=32, w=32).float() / 255
    sigma = torch.tensor([0.1, 0.8, 2.0])
    out = gaussian_blur(x, sigma, 13)
    for b in range(3):
        s = float(sigma[b])
        torch.testing.assert_close(out[b], TF.gaussian_blur(x[b], [13, 13], [s, s]), atol=1e-5, rtol=0)


def test_parameter_distributions() -> None:
    views = BatchViews(input_size=32, num_views=2, min_scale=0.2, cj_prob=0.8, cj_strength=0.5, gray_prob=0.2,
                       blur_prob=(1.0, 0.1), solarize_prob=(0.0, 0.2), hflip_prob=0.5)
    n_per_view = 20000
    p = views.sample(n_per_view, 32, 32, torch.Generator().manual_seed(0))
    top, left, h, w = p.crop.unbind(1)
    area = (h * w).double() / (32 * 32)
    assert (h >= 1).all() and (w >= 1).all() and (top + h <= 32).all() and (left + w <= 32).all()
    assert area.max() <= 1.0 and area.min() >= 0.2 * 0.75  # integer rounding of h, w at 32 px
    assert (area >= 0.2).float().mean() > 0.95
    ratio = w.double() / h.double()
    assert ratio.min() > 3 / 4 * 0.75 and ratio.max() < 4 / 3 / 0.75
    # Offsets uniform over the valid range: the mean relative offset is 1/2.
    rel = (top.double() + 0.5) / (32 - h + 1).double()
    assert abs(float(rel.mean()) - 0.5) < 0.02

    def rate(mask: torch.Tensor) -> float:
        return float(mask.float().mean())

    assert abs(rate(p.flip) - 0.5) < 0.015
    assert abs(rate(p.jitter) - 0.8) < 0.015
    assert abs(rate(p.gray) - 0.2) < 0.015
    blurred = (p.blur_sigma > 0).view(2, -1)
    assert rate(blurred[0]) == 1.0 and abs(rate(blurred[1]) - 0.1) < 0.015
    sol = p.solarize.view(2, -1)
    assert rate(sol[0]) == 0.0 and abs(rate(sol[1]) - 0.2) < 0.015
    sig = p.blur_sigma[p.blur_sigma > 0]
    assert sig.min() >= 0.1 and sig.max() <= 2.0
    f = p.jitter_factors
    for k, (lo, hi) in enumerate([(0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1)]):
        assert f[:, k].min() >= lo and f[:, k].max() <= hi
        assert abs(float(f[:, k].mean()) - (lo + hi) / 2) < 0.01 * (hi - lo) + 1e-3
    assert (p.jitter_order.sort(dim=1).values == torch.arange(4)).all()
    counts = torch.bincount(p.jitter_order[:, 0], minlength=4).float() / len(f)
    assert (counts - 0.25).abs().max() < 0.02  # each op first a quarter of the time


def test_crop_fallback_and_extreme_aspect() -> None:
    g = torch.Generator().manual_seed(0)
    crops = sample_crops(500, 4, 200, (0.9, 1.0), (3 / 4, 4 / 3), g)  # no try can fit: centre fallback
    top, left, h, w = crops.unbind(1)
    assert (h == 4).all() and (w == round(4 * 4 / 3)).all() and (left == (200 - w) // 2).all()


def test_generator_makes_views_reproducible_and_views_differ() -> None:
    views = BatchViews(input_size=16, num_views=3, blur_prob=0.5, solarize_prob=0.2)
    images = _images(b=4)
    a = views(images, torch.Generator().manual_seed(7))
    b = views(images, torch.Generator().manual_seed(7))
    assert len(a) == 3 and all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.allclose(a[0], a[1])
    assert torch.isfinite(torch.stack(a)).all()


def test_picklable_and_input_checked() -> None:
    views = pickle.loads(pickle.dumps(BatchViews(input_size=16)))
    with pytest.raises(TypeError, match="uint8"):
        views(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="one per view"):
        BatchViews(num_views=2, blur_prob=(1.0, 0.5, 0.1))


def test_uint8_image_decodes_and_crops() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    (x,) = UInt8Image()(Image.fromarray(rgb))
    assert x.dtype == torch.uint8 and x.shape == (3, 30, 50) and torch.equal(x.permute(1, 2, 0), torch.from_numpy(rgb))
    (y,) = UInt8Image(size=20)(Image.fromarray(rgb))
    assert y.shape == (3, 20, 20)
    assert UInt8Image(size=20).decode_size == (20, 20) and UInt8Image().decode_size is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    views = BatchViews(input_size=24, num_views=2, blur_prob=(1.0, 0.1), solarize_prob=(0.0, 0.2))
    images = _images(b=16)
    params = views.sample(16, 40, 48, torch.Generator().manual_seed(0))
    cpu = views.apply(images, params)
    gpu = views.apply(images.cuda(), params)
    for c, d in zip(cpu, gpu):
        diff = (c - d.cpu()).abs()
        assert (diff > 1e-3).float().mean() < 1e-3 and diff.median() < 1e-5
