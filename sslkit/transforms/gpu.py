"""Batched view augmentation on the batch's device: workers only decode, the device augments.

:class:`BatchViews` takes a ``uint8`` batch ``(B, C, H, W)`` (on a GPU when there is one, else on the
CPU) and returns ``num_views`` augmented, normalised float views with per-sample random parameters,
in plain torch ops. Parameter semantics are those of the per-image pipelines of lightly/torchvision
(``SimCLRViewTransform``, ``BYOLView{1,2}Transform``), in their order:

1. ``RandomResizedCrop(input_size, scale=(min_scale, max_scale), ratio=(3/4, 4/3))``: torchvision's sampling
   (10 tries, then the centre-crop fallback) and its antialiased bilinear resampling (PIL's filter),
   computed as two batched matmuls ``W_y @ x @ W_x^T`` with per-sample weight matrices. The crop, the
   resize and the horizontal flip (reversed rows of ``W_x``) are one resampling step;
2. ``RandomHorizontalFlip(hflip_prob)``;
3. ``RandomApply([ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s)], cj_prob)``: brightness, contrast,
   saturation, hue in a random order per sample (torchvision draws ``randperm(4)``);
4. ``RandomGrayscale(gray_prob)`` (ITU-R 601-2 luma, as torchvision);
5. Gaussian blur with probability ``blur_prob`` and ``sigma ~ U(blur_sigmas)`` (lightly's
   ``GaussianBlur``; PIL's box approximation there, a true separable Gaussian here);
6. solarize with probability ``solarize_prob`` (threshold 128 of 255, as lightly's);
7. normalise with ``mean`` / ``std``.

Pixels stay float in ``[0, 1]`` between steps (the PIL pipeline rounds to ``uint8`` after each one).
Random rotation and vertical flips of the per-image transforms are not implemented.

The random parameters are drawn on the CPU from an explicit ``torch.Generator`` (tiny tensors), so
a batch's views depend only on the generator's seed, whatever the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)  # ColorJitter's op indices (torchvision order)
SOLARIZE_THRESHOLD = 128 / 255


@dataclass
class ViewParams:
    """Per-sample parameters of ``N = num_views * B`` views, view-major (row ``v * B + b``), on the CPU.

    Attributes:
        crop: ``(N, 4)`` int64 ``top, left, height, width`` of the crop in source pixels.
        flip: ``(N,)`` bool, horizontal flip.
        jitter: ``(N,)`` bool, colour jitter applied.
        jitter_factors: ``(N, 4)`` brightness, contrast, saturation factors and hue shift.
        jitter_order: ``(N, 4)`` int64, a permutation of the four jitter ops per sample.
        gray: ``(N,)`` bool, converted to grayscale.
        blur_sigma: ``(N,)`` Gaussian-blur sigma, ``0`` where not blurred.
        solarize: ``(N,)`` bool, solarized.
    """

    crop: Tensor
    flip: Tensor
    jitter: Tensor
    jitter_factors: Tensor
    jitter_order: Tensor
    gray: Tensor
    blur_sigma: Tensor
    solarize: Tensor


class UInt8Image:
    """Decode-only worker transform for device augmentation: PIL image → ``[uint8 (3, S, S)]``.

    Workers emit the image as the single entry of ``views`` (so the training batch carries
    ``views = [uint8 (B, 3, S, S)]``) and :class:`BatchViews` makes the real views on the device.
    ``uint8`` moves 4x fewer bytes through worker shared memory than float views.

    Args:
        size: Resize the shorter side to ``size`` and centre-crop a square (images of a batch must
            share one size); ``None`` keeps the decoded size (CIFAR: all 32 x 32).
    """

    def __init__(self, size: int | None = None) -> None:
        self.size = size

    @property
    def decode_size(self) -> tuple[int, int] | None:
        """Smallest size the reader needs decoded (JPEG decoders downscale by 2/4/8 for free)."""
        return (self.size, self.size) if self.size is not None else None

    def __call__(self, image: Image.Image) -> list[Tensor]:
        image = image.convert("RGB")
        if self.size is not None:
            w, h = image.size
            s = self.size / min(w, h)
            if (w, h) != (self.size, self.size):
                rw, rh = max(self.size, round(w * s)), max(self.size, round(h * s))
                left, top = (rw - self.size) // 2, (rh - self.size) // 2
                box = (left / s, top / s, (left + self.size) / s, (top + self.size) / s)
                image = image.resize((self.size, self.size), Image.BILINEAR, box=box, reducing_gap=3.0)
        return [torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)]  # (3, S, S)


class BatchViews:
    """``num_views`` augmented views of a ``uint8`` batch, computed on the batch's device.

    Args:
        input_size: Output side length of each view.
        num_views: Views per image.
        min_scale: Lower bound of the random-resized-crop area fraction.
        max_scale: Upper bound of it (1; DINO's local crops: 0.4).
        ratio: Aspect-ratio range of the crop (torchvision's ``(3/4, 4/3)``).
        cj_prob: Probability of colour jitter.
        cj_strength: Jitter strength ``s``.
        cj_bright: Brightness range at ``s = 1`` (factor in ``[1 - s b, 1 + s b]``).
        cj_contrast: Contrast range at ``s = 1``.
        cj_sat: Saturation range at ``s = 1``.
        cj_hue: Hue range at ``s = 1`` (shift in ``[-s h, s h]``, at most 0.5).
        gray_prob: Probability of grayscale.
        blur_prob: Blur probability, one value for all views or one per view.
        blur_sigmas: Range of the blur sigma in output pixels (lightly: ``(0.1, 2)``).
        solarize_prob: Solarization probability, one value or one per view.
        hflip_prob: Probability of a horizontal flip.
        mean: Normalisation mean.
        std: Normalisation std.

    The defaults are SimCLR's (lightly's ``SimCLRViewTransform``); BYOL is
    ``blur_prob=(1.0, 0.1), solarize_prob=(0.0, 0.2), cj_bright=0.4, cj_contrast=0.4, cj_sat=0.2, cj_hue=0.1``.
    """

    def __init__(
        self,
        input_size: int = 224,
        num_views: int = 2,
        min_scale: float = 0.08,
        max_scale: float = 1.0,
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.8,
        cj_hue: float = 0.2,
        gray_prob: float = 0.2,
        blur_prob: float | Sequence[float] = 0.5,
        blur_sigmas: tuple[float, float] = (0.1, 2.0),
        solarize_prob: float | Sequence[float] = 0.0,
        hflip_prob: float = 0.5,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}")
        if cj_strength * cj_hue > 0.5:
            raise ValueError(f"hue range cj_strength * cj_hue must be <= 0.5, got {cj_strength * cj_hue}")
        self.input_size = input_size
        self.num_views = num_views
        self.scale = (float(min_scale), float(max_scale))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.cj_prob = cj_prob
        s = cj_strength
        self.jitter_ranges = (  # torchvision ColorJitter: factor ranges, hue shift range
            (max(0.0, 1 - s * cj_bright), 1 + s * cj_bright),
            (max(0.0, 1 - s * cj_contrast), 1 + s * cj_contrast),
            (max(0.0, 1 - s * cj_sat), 1 + s * cj_sat),
            (-s * cj_hue, s * cj_hue),
        )
        self.gray_prob = gray_prob
        self.blur_probs = _per_view(blur_prob, num_views, "blur_prob")
        self.blur_sigmas = (float(blur_sigmas[0]), float(blur_sigmas[1]))
        self.blur_kernel_size = 2 * math.ceil(3 * self.blur_sigmas[1]) + 1  # +-3 sigma at the largest sigma
        self.solarize_probs = _per_view(solarize_prob, num_views, "solarize_prob")
        self.hflip_prob = hflip_prob
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(v) for v in std)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """Views of ``images`` ``(B, C, H, W)`` uint8: ``num_views`` float tensors ``(B, C, S, S)``."""
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError(f"BatchViews takes a uint8 (B, C, H, W) batch, got {images.dtype} {tuple(images.shape)}")
        B, _, H, W = images.shape
        return self.apply(images, self.sample(B, H, W, generator))

    # -- parameters -------------------------------------------------------------------------------
    def sample(self, batch_size: int, height: int, width: int, generator: torch.Generator | None = None) -> ViewParams:
        """Draw the parameters of ``num_views * batch_size`` views of ``height x width`` images."""
        g = generator if generator is not None else torch.default_generator
        V, n = self.num_views, self.num_views * batch_size

        def rand(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=g, dtype=torch.float64)

        def per_view(probs: tuple[float, ...]) -> Tensor:
            return torch.tensor(probs, dtype=torch.float64).repeat_interleave(batch_size)

        crop = sample_crops(n, height, width, self.scale, self.ratio, g)
        flip = rand(n) < self.hflip_prob
        jitter = rand(n) < self.cj_prob
        lo = torch.tensor([r[0] for r in self.jitter_ranges], dtype=torch.float64)
        hi = torch.tensor([r[1] for r in self.jitter_ranges], dtype=torch.float64)
        factors = (lo + (hi - lo) * rand(n, 4)).float()
        order = torch.argsort(rand(n, 4), dim=1)  # a uniform random permutation per sample
        gray = rand(n) < self.gray_prob
        blurred = rand(n) < per_view(self.blur_probs)
        sigma = self.blur_sigmas[0] + (self.blur_sigmas[1] - self.blur_sigmas[0]) * rand(n)
        solarize = rand(n) < per_view(self.solarize_probs)
        assert V * batch_size == n
        return ViewParams(crop, flip, jitter, factors, order, gray, (sigma * blurred).float(), solarize)

    # -- application ------------------------------------------------------------------------------
    def apply(self, images: Tensor, params: ViewParams) -> list[Tensor]:
        """Views of ``images`` ``(B, C, H, W)`` uint8 for given ``params``, on ``images.device``."""
        B, C, H, W = images.shape
        V, S, device = self.num_views, self.input_size, images.device
        x = resized_crop(images, params.crop.view(V, B, 4), params.flip.view(V, B), S)  # (V, B, C, S, S)
        x = x.flatten(0, 1)  # (N, C, S, S) in [0, 1]
        x = color_jitter(x, params.jitter, params.jitter_factors, params.jitter_order)
        if params.gray.any():
            x = torch.where(params.gray.to(device, non_blocking=True).view(-1, 1, 1, 1), grayscale(x).expand_as(x), x)
        blurred = params.blur_sigma > 0
        if blurred.any():
            idx = blurred.nonzero().squeeze(1)
            sel = idx.to(device, non_blocking=True)
            x[sel] = gaussian_blur(x[sel], params.blur_sigma[idx], self.blur_kernel_size)
        if params.solarize.any():
            mask = params.solarize.to(device, non_blocking=True).view(-1, 1, 1, 1) & (x >= SOLARIZE_THRESHOLD)
            x = torch.where(mask, 1.0 - x, x)
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        x = (x - mean) / std
        return list(x.chunk(V))  # V x (B, C, S, S), each contiguous


def _per_view(value: float | Sequence[float], num_views: int, name: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),) * num_views
    values = tuple(float(v) for v in value)
    if len(values) != num_views:
        raise ValueError(f"{name} takes one value or one per view ({num_views}), got {values}")
    return values


def sample_crops(
    n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], g: torch.Generator,
    tries: int = 10,
) -> Tensor:
    """``(n, 4)`` int64 ``top, left, h, w``: torchvision's ``RandomResizedCrop.get_params``, vectorised."""
    area = height * width
    log_ratio = torch.tensor(ratio, dtype=torch.float64).log()
    target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, tries, generator=g, dtype=torch.float64))
    aspect = torch.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * torch.rand(n, tries, generator=g, dtype=torch.float64))
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.long().argmax(dim=1, keepdim=True)  # the first successful try, as torchvision's loop
    found = ok.any(dim=1)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    # Fallback after `tries` failures: a centre crop of the whole image with the ratio clamped.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    w, h = torch.where(found, w, fw), torch.where(found, h, fh)
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    top = torch.where(found, (u[:, 0] * (height - h + 1)).long(), (height - h) // 2)
    left = torch.where(found, (u[:, 1] * (width - w + 1)).long(), (width - w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def resize_weights(start: Tensor, length: Tensor, in_size: int, out_size: int, device: torch.device) -> Tensor:
    """``(..., out_size, in_size)`` rows resampling ``[start, start + length)`` to ``out_size`` pixels.

    PIL's / torchvision's antialiased bilinear filter: output pixel ``i`` centred at
    ``start + (i + 0.5) * scale`` in input pixels, a triangle of half-width ``max(scale, 1)``,
    weights normalised over the crop (pixels outside it never contribute).
    """
    start = start.to(device=device, dtype=torch.float32).unsqueeze(-1).unsqueeze(-1)  # (..., 1, 1)
    length = length.to(device=device, dtype=torch.float32).unsqueeze(-1).unsqueeze(-1)
    scale = length / out_size
    support = scale.clamp(min=1.0)
    center = start + scale * (torch.arange(out_size, device=device, dtype=torch.float32).view(-1, 1) + 0.5)
    pixel = torch.arange(in_size, device=device, dtype=torch.float32)  # (in,)
    w = (1.0 - ((pixel + 0.5 - center) / support).abs()).clamp_(min=0.0)  # (..., out, in)
    w = w * ((pixel >= start) & (pixel < start + length))
    return w / w.sum(dim=-1, keepdim=True)


def resized_crop(images: Tensor, crop: Tensor, flip: Tensor, size: int) -> Tensor:
    """Crop, resize (antialiased bilinear) and flip as two batched matmuls; float output in ``[0, 1]``.

    Args:
        images: ``(B, C, H, W)`` uint8 (or float in ``[0, 255]``).
        crop: ``(V, B, 4)`` int64 ``top, left, h, w`` (CPU).
        flip: ``(V, B)`` bool horizontal flips (CPU).
        size: Output side length.

    Returns:
        ``(V, B, C, size, size)`` float32.
    """
    _, _, H, W = images.shape
    device = images.device
    w_y = resize_weights(crop[..., 0], crop[..., 2], H, size, device) / 255.0  # (V, B, S, H); folds the 1/255
    w_x = resize_weights(crop[..., 1], crop[..., 3], W, size, device)  # (V, B, S, W)
    w_x = torch.where(flip.to(device, non_blocking=True).view(*flip.shape, 1, 1), w_x.flip(-2), w_x)
    x = images.float().unsqueeze(0)  # (1, B, C, H, W): broadcast over views, never repeated in memory
    x = torch.matmul(x, w_x.transpose(-1, -2).unsqueeze(2))  # (V, B, C, H, S)
    return torch.matmul(w_y.unsqueeze(2), x)  # (V, B, C, S, S)


# -- colour (float images in [0, 1], per-sample factors) -------------------------------------------
def grayscale(x: Tensor) -> Tensor:
    """``(N, 3, H, W) -> (N, 1, H, W)`` luma, torchvision's weights."""
    r, g, b = x.unbind(dim=1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1.0 - f) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue by ``shift`` (fraction of a turn) per sample, via HSV as torchvision."""
    r, g, b = x.unbind(dim=1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    cr = maxc - minc
    eqc = cr == 0
    s = cr / torch.where(eqc, torch.ones_like(maxc), maxc)
    cr_div = torch.where(eqc, torch.ones_like(cr), cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g) / cr_div, (maxc - b) / cr_div
    is_r, is_g = maxc == r, (maxc == g) & (maxc != r)
    h = torch.where(is_r, bc - gc, torch.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.fmod(h / 6.0 + 1.0, 1.0)
    h = torch.remainder(h + shift.view(-1, 1, 1), 1.0)
    # HSV -> RGB: channel k = v - v s max(0, min(q, 4 - q, 1)), q = (k_offset + 6 h) mod 6.
    v = maxc
    offsets = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    q = torch.remainder(offsets + 6.0 * h.unsqueeze(1), 6.0)
    k = torch.minimum(q, 4.0 - q).clamp_(0.0, 1.0)
    return (v.unsqueeze(1) * (1.0 - s.unsqueeze(1) * k)).clamp_(0.0, 1.0)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: Tensor, applied: Tensor, factors: Tensor, order: Tensor) -> Tensor:
    """torchvision's ``ColorJitter`` per sample, each in its own op order (subsets gathered per op).

    Args:
        x: ``(N, 3, H, W)`` float in ``[0, 1]``.
        applied: ``(N,)`` bool (CPU): which samples are jittered.
        factors: ``(N, 4)`` (CPU) brightness, contrast, saturation factors and hue shift.
        order: ``(N, 4)`` int64 (CPU) op permutation per sample.
    """
    if not applied.any():
        return x
    x = x.clone()
    for slot in range(4):
        for op, fn in enumerate(_JITTER_OPS):
            idx = (applied & (order[:, slot] == op)).nonzero().squeeze(1)  # CPU: no device sync
            if idx.numel() == 0:
                continue
            sel = idx.to(x.device, non_blocking=True)
            x[sel] = fn(x[sel], factors[idx, op].to(x.device, non_blocking=True))
    return x


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur with per-sample ``sigma`` (CPU ``(N,)``), reflect padding (torchvision's)."""
    N, C, H, W = x.shape
    half = (kernel_size - 1) / 2
    t = torch.linspace(-half, half, kernel_size, device=x.device)
    k = torch.exp(-0.5 * (t / sigma.to(x.device, non_blocking=True).view(-1, 1)) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(C, dim=0)  # (N*C, k)
    p = kernel_size // 2
    y = F.pad(x.reshape(1, N * C, H, W), (p, p, p, p), mode="reflect")
    y = F.conv2d(y, k.view(N * C, 1, 1, kernel_size), groups=N * C)
    y = F.conv2d(y, k.view(N * C, 1, kernel_size, 1), groups=N * C)
    return y.view(N, C, H, W)
