"""Multi-crop views (Caron et al., 2020 SwAV; 2021 DINO): two global crops and N small local crops."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightly.transforms.dino_transform import DINOViewTransform
from PIL import Image

from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD


class MultiCropViews:
    """``[global_0, global_1, local_0, ..., local_{N-1}]`` for DINO (lightly's ``DINOViewTransform``).

    Global crops share one size and local crops another, so the default collate stacks each index.
    Built from lightly's per-view transform rather than ``DINOTransform``, whose second global view
    ignores ``cj_strength`` (lightly 1.6 does not pass it through).

    Args:
        global_crop_size: Side of the two global crops.
        global_crop_scale: Area range of the global crops (``(0.4, 1.0)`` in DINO).
        local_crop_size: Side of the local crops (96 at 224 px; 16 at 32 px keeps 4-px patches whole).
        local_crop_scale: Area range of the local crops (``(0.05, 0.4)`` in DINO).
        num_local_views: Local crops per image (0 disables multi-crop).
        cj_prob: Probability of colour jitter.
        cj_strength: Multiplies DINO's jitter (brightness 0.8, contrast 0.8, saturation 0.4, hue 0.2).
        gray_prob: Probability of converting to grayscale.
        blur_probs: Blur probability of global view 0, global view 1, local views (``(1.0, 0.1, 0.5)``).
        solarize_prob: Solarization probability of global view 1 (the other views never solarize).
        hflip_prob: Probability of a horizontal flip.
        mean: Normalisation mean.
        std: Normalisation std.
    """

    def __init__(
        self,
        global_crop_size: int = 224,
        global_crop_scale: tuple[float, float] = (0.4, 1.0),
        local_crop_size: int = 96,
        local_crop_scale: tuple[float, float] = (0.05, 0.4),
        num_local_views: int = 6,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        gray_prob: float = 0.2,
        blur_probs: tuple[float, float, float] = (1.0, 0.1, 0.5),
        solarize_prob: float = 0.2,
        hflip_prob: float = 0.5,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if num_local_views < 0:
            raise ValueError(f"num_local_views must be >= 0, got {num_local_views}")
        if len(blur_probs) != 3:
            raise ValueError(f"blur_probs is (global_0, global_1, local), got {blur_probs}")
        common = dict(
            hf_prob=hflip_prob, cj_prob=cj_prob, cj_strength=cj_strength, random_gray_scale=gray_prob,
            normalize={"mean": list(mean), "std": list(std)},
        )
        self.num_local_views = num_local_views
        self.global_views = [
            DINOViewTransform(global_crop_size, tuple(global_crop_scale), gaussian_blur=blur_probs[0],
                              solarization_prob=0.0, **common),
            DINOViewTransform(global_crop_size, tuple(global_crop_scale), gaussian_blur=blur_probs[1],
                              solarization_prob=solarize_prob, **common),
        ]
        self.local_view = DINOViewTransform(local_crop_size, tuple(local_crop_scale), gaussian_blur=blur_probs[2],
                                            solarization_prob=0.0, **common)

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        views = [view(image) for view in self.global_views]  # 2 x (C, G, G)
        return views + [self.local_view(image) for _ in range(self.num_local_views)]  # N x (C, L, L)
