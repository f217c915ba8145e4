"""MultiCropViews: 2 global + N local crops of their own sizes; jitter strength reaches every view."""

from __future__ import annotations

import pytest
import torch
from lightly.transforms.solarize import RandomSolarization
from PIL import Image

from sslkit.data.collate import collate_samples
from sslkit.transforms import MultiCropViews


def _transforms(view) -> list:
    """The view's transforms, with those inside ``RandomApply`` flattened in (v1 or v2 torchvision)."""
    out = []
    for t in view.transform.transforms:
        out += [t, *getattr(t, "transforms", [])]
    return out


def test_global_and_local_sizes_and_collate() -> None:
    transform = MultiCropViews(global_crop_size=32, local_crop_size=16, num_local_views=3)
    image = Image.new("RGB", (32, 32), (10, 200, 90))
    views = transform(image)
    assert [tuple(v.shape) for v in views] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    batch = collate_samples([{"views": transform(image), "label": 0, "key": str(i)} for i in range(4)])
    assert [tuple(v.shape) for v in batch["views"]] == [(4, 3, 32, 32)] * 2 + [(4, 3, 16, 16)] * 3


def test_jitter_strength_reaches_both_global_views() -> None:
    # lightly 1.6's DINOTransform drops cj_strength for the second global view.
    transform = MultiCropViews(cj_strength=0.25)
    for view in (*transform.global_views, transform.local_view):
        jitter = [t for t in _transforms(view) if type(t).__name__ == "ColorJitter"]
        assert jitter[0].brightness == pytest.approx((1 - 0.2, 1 + 0.2))  # 0.25 x 0.8


def test_only_the_second_global_view_solarizes() -> None:
    transform = MultiCropViews(solarize_prob=0.3)
    probs = [[t.prob for t in _transforms(v) if isinstance(t, RandomSolarization)]
             for v in (*transform.global_views, transform.local_view)]
    assert probs == [[0.0], [0.3], [0.0]]


def test_negative_local_views_raise() -> None:
    with pytest.raises(ValueError, match="num_local_views"):
        MultiCropViews(num_local_views=-1)
    assert len(MultiCropViews(global_crop_size=8, num_local_views=0)(Image.new("RGB", (8, 8)))) == 2
    assert torch.is_tensor(MultiCropViews(global_crop_size=8, num_local_views=0)(Image.new("RGB", (8, 8)))[0])
