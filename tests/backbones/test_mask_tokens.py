"""The mask-token ViT pass equals the plain pass without masks, for fixed and dynamic image sizes."""

from __future__ import annotations

import pytest
import torch

from sslkit.backbones import create_backbone
from sslkit.backbones.mask_tokens import encode_with_mask_tokens

TINY = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 48, "num_heads": 3}


@pytest.mark.parametrize("dynamic", [False, True])
def test_no_mask_is_the_plain_pass_and_masking_changes_only_through_the_token(dynamic: bool) -> None:
    torch.manual_seed(0)
    vit = create_backbone("vit_tiny_patch16_224", **TINY, dynamic_img_size=dynamic).eval()
    x, token = torch.randn(2, 3, 32, 32), torch.randn(1, 1, 48)
    none = torch.zeros(2, 16, dtype=torch.bool)
    torch.testing.assert_close(encode_with_mask_tokens(vit, x, none, token), vit.forward_features(x))
    mask = none.clone()
    mask[0, :5] = True
    out = encode_with_mask_tokens(vit, x, mask, token)
    x2 = x.clone()
    x2[0, :, :8, :] = 0.0  # patches 0-3 (all masked): their pixels no longer matter
    torch.testing.assert_close(encode_with_mask_tokens(vit, x2, mask, token)[0], out[0])
    assert not torch.allclose(out[0], vit.forward_features(x)[0])
    torch.testing.assert_close(out[1], vit.forward_features(x)[1])
    with pytest.raises(ValueError, match="does not match 16 patches"):
        encode_with_mask_tokens(vit, x, torch.zeros(2, 15, dtype=torch.bool), token)
