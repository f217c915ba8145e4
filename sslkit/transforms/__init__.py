"""View generation for pretraining and preprocessing for evaluation."""

from sslkit.transforms.byol import BYOLViews
from sslkit.transforms.mask_views import MaskedImageViews
from sslkit.transforms.multicrop import MultiCropViews
from sslkit.transforms.rotation import WithRotationView, four_fold_rotations
from sslkit.transforms.shared_augment import SharedAugmentCollator, WithOriginal
from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, SimCLRViews

__all__ = ["BYOLViews", "MaskedImageViews", "MultiCropViews", "SharedAugmentCollator", "SimCLRViews", "EvalTransform", "IMAGENET_MEAN", "IMAGENET_STD", "WithOriginal", "WithRotationView", "four_fold_rotations"]
