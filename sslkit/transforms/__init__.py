"""View generation for pretraining (per image in workers, or batched on the device) and eval preprocessing."""

from sslkit.transforms.byol import BYOLViews
from sslkit.transforms.gpu import BatchViews, UInt8Image
from sslkit.transforms.mask_views import MaskedImageViews
from sslkit.transforms.multicrop import MultiCropViews
from sslkit.transforms.rotation import WithRotationView, four_fold_rotations
from sslkit.transforms.shared_augment import SharedAugmentCollator, WithOriginal
from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, SimCLRViews

__all__ = [
    "BYOLViews",
    "BatchViews",
    "EvalTransform",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MaskedImageViews",
    "MultiCropViews",
    "SharedAugmentCollator",
    "SimCLRViews",
    "UInt8Image",
    "WithOriginal",
    "WithRotationView",
    "four_fold_rotations",
]
