"""BYOLViews: two views of the requested size, each with its own blur/solarization probability."""

from __future__ import annotations

import pytest
import torch
from lightly.transforms.gaussian_blur import GaussianBlur
from lightly.transforms.solarize import RandomSolarization
from PIL import Image

from sslkit.transforms import BYOLViews


def _probs(view, cls: type) -> list[float]:
    return [t.prob for t in view.transform.transforms if isinstance(t, cls)]


def test_two_views_of_the_input_size() -> None:
    image = Image.new("RGB", (40, 40), (120, 30, 200))
    views = BYOLViews(input_size=32)(image)
    assert len(views) == 2
    assert all(v.shape == (3, 32, 32) and v.dtype == torch.float32 for v in views)


def test_per_view_probabilities_reach_lightlys_transforms() -> None:
    views = BYOLViews(blur_probs=(0.7, 0.3), solarize_probs=(0.1, 0.4)).views
    assert [_probs(v, GaussianBlur) for v in views] == [[0.7], [0.3]]
    assert [_probs(v, RandomSolarization) for v in views] == [[0.1], [0.4]]


def test_wrong_number_of_probabilities_raises() -> None:
    with pytest.raises(ValueError, match="one value per view"):
        BYOLViews(blur_probs=(1.0, 0.1, 0.5))
