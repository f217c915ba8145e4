"""View generation for pretraining and preprocessing for evaluation."""

from sslkit.transforms.views import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, SimCLRViews

__all__ = ["SimCLRViews", "EvalTransform", "IMAGENET_MEAN", "IMAGENET_STD"]
