"""Augmentations shared by groups of images, for CARE's equivariance term (Gupta et al., 2023).

CARE compares inner products between images that received the *same* augmentation, so the sample
transform keeps the un-augmented image (:class:`WithOriginal`) and the collator, in the dataloader
workers, augments whole groups of ``group_size`` images at once (torchvision v2 transforms draw one
set of parameters per call on a batched tensor), twice: ``views_shared = [a_g(x), a'_g(x)]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import v2

from sslkit.data.collate import collate_samples, pil_to_tensor
from sslkit.masking.seeding import batch_seed
from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD


class WithOriginal:
    """``transform(image) + [original]``: the views of ``transform`` plus the plain ``[0, 1]`` image.

    Args:
        transform: A view transform (PIL image -> ``list[Tensor]``), e.g. ``SimCLRViews``.
    """

    def __init__(self, transform: Callable[[Image.Image], list[torch.Tensor]]) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        return [*self.transform(image), pil_to_tensor(image)]


class SharedAugmentCollator:
    """Collator that augments groups of images with one shared random augmentation per group.

    Expects the last view of each sample to be the original image (:class:`WithOriginal`); removes
    it from ``views`` and adds ``views_shared`` (two ``(B, C, H, W)`` tensors: per group ``g`` of
    ``group_size`` consecutive rows, every image got augmentation ``a_g`` in the first and ``a'_g``
    in the second) and ``shared_group_size``. The augmentation is CARE's SimCLR-style CIFAR one.

    Args:
        group_size: Images per shared augmentation (CARE's CIFAR runs: 16 of a 256 batch).
        input_size: Output side length.
        min_scale: Lower bound of the random-resized-crop area (torchvision's 0.08 in CARE).
        cj_prob: Probability of colour jitter (brightness/contrast/saturation 0.4, hue 0.1).
        gray_prob: Probability of grayscale.
        blur_prob: Probability of a 3x3 Gaussian blur, sigma 0.1-2 (CARE: 0.5).
        hflip_prob: Probability of a horizontal flip.
        mean: Normalisation mean.
        std: Normalisation std.
        seed: With the batch's sample keys, seeds the augmentation draws.
        collate_fn: Collator for the samples themselves (default: ``collate_samples``).
    """

    def __init__(
        self,
        group_size: int = 16,
        input_size: int = 32,
        min_scale: float = 0.08,
        cj_prob: float = 0.8,
        gray_prob: float = 0.2,
        blur_prob: float = 0.5,
        hflip_prob: float = 0.5,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        seed: int = 0,
        collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    ) -> None:
        if group_size < 2:
            raise ValueError(f"group_size must be >= 2, got {group_size}")
        self.group_size = group_size
        self.augment = v2.Compose(
            [
                v2.RandomResizedCrop(input_size, scale=(min_scale, 1.0), antialias=True),
                v2.RandomHorizontalFlip(hflip_prob),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=cj_prob),
                v2.RandomGrayscale(gray_prob),
                v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1, 2.0))], p=blur_prob),
                v2.Normalize(list(mean), list(std)),
            ]
        )
        self.seed = seed
        self.collate_fn = collate_fn or collate_samples

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        if len(samples) % self.group_size:
            raise ValueError(f"batch of {len(samples)} is not a multiple of group_size {self.group_size}")
        batch = self.collate_fn(samples)
        originals = batch["views"].pop()  # (B, C, H, W) in [0, 1]
        with torch.random.fork_rng(devices=[]):  # v2 draws from the global RNG: seed it, then restore it
            torch.manual_seed(batch_seed(self.seed, batch["key"]))
            groups = originals.split(self.group_size)
            batch["views_shared"] = [torch.cat([self.augment(g) for g in groups]) for _ in range(2)]
        batch["shared_group_size"] = self.group_size
        return batch
