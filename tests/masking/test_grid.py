"""A mask collator and the backbone must agree on image side and patch size: one-line refusal otherwise."""

from __future__ import annotations

import pytest

from sslkit.backbones import create_backbone
from sslkit.data import collate_samples
from sslkit.errors import UserError
from sslkit.masking import IBOTMaskCollator, MultiBlockMaskCollator, RandomMaskCollator, SimMIMMaskCollator
from sslkit.masking.grid import check_mask_grid
from tests.conftest import TINY_VIT

COLLATORS = {
    "multiblock": lambda size, patch: MultiBlockMaskCollator(size, patch, min_keep=1),
    "random": lambda size, patch: RandomMaskCollator(size, patch),
    "simmim": lambda size, patch: SimMIMMaskCollator(size, patch, mask_patch_size=2 * patch),
    "ibot": lambda size, patch: IBOTMaskCollator(size, patch),
}


@pytest.fixture(scope="module")
def vit():  # noqa: ANN201
    return create_backbone("vit_tiny_patch16_224", **TINY_VIT)  # 32 px, 8-px patches


@pytest.mark.parametrize("kind", sorted(COLLATORS))
def test_agreeing_sizes_pass_and_each_disagreement_names_both_values(kind: str, vit) -> None:
    make = COLLATORS[kind]
    check_mask_grid(make(32, 8), vit, "IJEPA")
    with pytest.raises(UserError) as exc:
        check_mask_grid(make(64, 8), vit, "IJEPA")
    message = str(exc.value)
    assert "\n" not in message and message.startswith("IJEPA: ")
    assert "input_size=64" in message and "img_size=32" in message
    with pytest.raises(UserError, match=r"patch_size=4 but the backbone's patch_size=8"):
        check_mask_grid(make(32, 4), vit, "IJEPA")


def test_other_collators_and_backbones_are_not_checked(vit) -> None:
    check_mask_grid(collate_samples, vit, "SimCLR")
    check_mask_grid(None, vit, "SimCLR")
    check_mask_grid(MultiBlockMaskCollator(64, 8), create_backbone("resnet18_cifar"), "BYOL")
