"""Per-image view transforms run in dataloader workers (lightly's transforms underneath)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision.transforms as T
from lightly.transforms import SimCLRViewTransform
from PIL import Image

from sslkit.presets import IMAGENET_MEAN, IMAGENET_STD


class SimCLRViews:
    """``num_views`` independently augmented views of one image (SimCLR, Chen et al., 2020, Sec. 3).

    Args:
        input_size: Output side length of each view.
        num_views: How many views to draw.
        min_scale: Lower bound of the random-resized-crop area (0.08 on ImageNet, ~0.2 on CIFAR).
        cj_prob: Probability of colour jitter.
        cj_strength: Jitter strength ``s``: brightness/contrast/saturation ``0.8 s``, hue ``0.2 s``.
        gray_prob: Probability of converting to grayscale.
        blur_prob: Probability of Gaussian blur (0 for 32 px images, as in the paper's CIFAR runs).
        hflip_prob: Probability of a horizontal flip.
        rotation_degrees: Random rotation range (0 disables; useful on digits, where flips are wrong).
        mean: Normalisation mean.
        std: Normalisation std.
    """

    def __init__(
        self,
        input_size: int = 224,
        num_views: int = 2,
        min_scale: float = 0.08,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        gray_prob: float = 0.2,
        blur_prob: float = 0.5,
        hflip_prob: float = 0.5,
        rotation_degrees: float = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        self.num_views = num_views
        self.view = SimCLRViewTransform(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=0.8,
            cj_contrast=0.8,
            cj_sat=0.8,
            cj_hue=0.2,
            min_scale=min_scale,
            random_gray_scale=gray_prob,
            gaussian_blur=blur_prob,
            hf_prob=hflip_prob,
            rr_prob=1.0 if rotation_degrees > 0 else 0.0,
            rr_degrees=rotation_degrees if rotation_degrees > 0 else None,
            normalize={"mean": list(mean), "std": list(std)},
        )

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        return [self.view(image) for _ in range(self.num_views)]


class EvalTransform:
    """Resize (shorter side), centre crop and normalise: the standard kNN / probe preprocessing.

    Args:
        input_size: Crop size.
        resize: Shorter side before the crop; default keeps the 224/256 ratio (and is a no-op at 32 px).
        mean: Normalisation mean.
        std: Normalisation std.
    """

    def __init__(
        self,
        input_size: int = 224,
        resize: int | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        resize = resize if resize is not None else (input_size if input_size <= 64 else int(input_size * 256 / 224))
        self.transform = T.Compose(
            [
                T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(input_size),
                T.ToTensor(),
                T.Normalize(mean=list(mean), std=list(std)),
            ]
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image)
