"""BYOL's asymmetric pair of views (Grill et al., 2020, Table 6), used by BYOL, MoCo v3, TiCo, VICReg
and Barlow Twins alike: blur always on the first view, rarely on the second, solarize only the second.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightly.transforms import BYOLView1Transform, BYOLView2Transform
from PIL import Image

from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD


class BYOLViews:
    """Two differently augmented views of one image (lightly's BYOL view transforms underneath).

    Args:
        input_size: Output side length of both views.
        min_scale: Lower bound of the random-resized-crop area (0.08 on ImageNet).
        cj_prob: Probability of colour jitter.
        cj_strength: Multiplies BYOL's jitter (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1);
            0.5 is usual at 32 px.
        gray_prob: Probability of converting to grayscale.
        blur_probs: Gaussian-blur probability of view 1 and view 2 (``(1.0, 0.1)`` in the paper;
            ``(0.0, 0.0)`` at 32 px, where a blur erases most of the image).
        solarize_probs: Solarization probability of view 1 and view 2 (``(0.0, 0.2)`` in the paper).
        hflip_prob: Probability of a horizontal flip.
        rotation_degrees: Random rotation range (0 disables).
        mean: Normalisation mean.
        std: Normalisation std.
    """

    def __init__(
        self,
        input_size: int = 224,
        min_scale: float = 0.08,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        gray_prob: float = 0.2,
        blur_probs: tuple[float, float] = (1.0, 0.1),
        solarize_probs: tuple[float, float] = (0.0, 0.2),
        hflip_prob: float = 0.5,
        rotation_degrees: float = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if len(blur_probs) != 2 or len(solarize_probs) != 2:
            raise ValueError(
                f"blur_probs and solarize_probs take one value per view, got {blur_probs}, {solarize_probs}"
            )
        common = dict(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            min_scale=min_scale,
            random_gray_scale=gray_prob,
            hf_prob=hflip_prob,
            rr_prob=1.0 if rotation_degrees > 0 else 0.0,
            rr_degrees=rotation_degrees if rotation_degrees > 0 else None,
            normalize={"mean": list(mean), "std": list(std)},
        )
        self.views = [
            BYOLView1Transform(gaussian_blur=blur_probs[0], solarization_prob=solarize_probs[0], **common),
            BYOLView2Transform(gaussian_blur=blur_probs[1], solarization_prob=solarize_probs[1], **common),
        ]

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        return [view(image) for view in self.views]  # 2 x (C, H, W)
