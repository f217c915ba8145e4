"""Recipe presets, plain data (no torch import): normalisation ``stats:`` and who takes ``image:`` sizes.

``sslkit.config`` expands a recipe's ``stats: cifar10`` into the ``mean``/``std`` of every transform in
:data:`NORMALISING_TRANSFORMS`, and its ``image: {size, patch_size}`` into the backbone and every
collator in :data:`MASK_COLLATORS`, before LightningCLI validates the recipe: the run record and the
published card carry the actual values.
"""

from __future__ import annotations

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (mean, std) per RGB channel, of the training split, pixels in [0, 1].
STATS: dict[str, Stats] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),  # the torchvision/timm preset
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "mnist": ((0.1307, 0.1307, 0.1307), (0.3081, 0.3081, 0.3081)),  # grey, repeated over RGB
    "digits": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # sklearn digits: maps [0, 1] to [-1, 1]
}

# Transforms (``sslkit.transforms.<name>``) taking ``mean`` and ``std``; a test keeps it equal to their signatures.
NORMALISING_TRANSFORMS = frozenset(
    {"BYOLViews", "BatchViews", "EvalTransform", "MaskedImageViews", "MultiCropViews", "SharedAugmentCollator",
     "SimCLRViews"}
)


def lookup_stats(name: str) -> Stats:
    """The ``(mean, std)`` of preset ``name``.

    Raises:
        KeyError: naming the known presets.
    """
    if name not in STATS:
        raise KeyError(f"unknown stats preset {name!r}; known: {', '.join(sorted(STATS))}")
    return STATS[name]


# Mask collators (``sslkit.masking.<name>``) taking ``input_size`` and ``patch_size``; kept equal to their signatures.
MASK_COLLATORS = frozenset({"IBOTMaskCollator", "MultiBlockMaskCollator", "RandomMaskCollator", "SimMIMMaskCollator"})
