"""The single view of masked-image objectives (I-JEPA, MAE, SimMIM): masking does the work.

I-JEPA and MAE use only a random resized crop (and MAE a flip); "You Don't Need Data-Augmentation
in Self-Supervised Learning" (Moutakanni et al., 2024) trains joint-embedding models with none, so
``augment=False`` gives the plain resized, centre-cropped, normalised image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision.transforms as T
from PIL import Image

from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD


class MaskedImageViews:
    """One view per image: ``[view]`` with ``view`` of shape ``(3, input_size, input_size)``.

    Args:
        input_size: Output side length.
        augment: Random resized crop + optional flip; ``False``: resize and centre crop only.
        min_scale: Lower bound of the crop area (I-JEPA: 0.3, MAE: 0.2; SimMIM: 0.67).
        hflip_prob: Probability of a horizontal flip (I-JEPA: 0, MAE/SimMIM: 0.5).
        mean: Normalisation mean.
        std: Normalisation std.
    """

    def __init__(
        self,
        input_size: int = 224,
        augment: bool = True,
        min_scale: float = 0.3,
        hflip_prob: float = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if augment:
            geometry = [
                T.RandomResizedCrop(input_size, scale=(min_scale, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                T.RandomHorizontalFlip(hflip_prob),
            ]
        else:
            geometry = [T.Resize(input_size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(input_size)]
        self.transform = T.Compose([*geometry, T.ToTensor(), T.Normalize(list(mean), list(std))])

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        return [self.transform(image)]
