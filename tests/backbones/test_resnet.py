"""``resnet18_cifar`` and the generic timm path of ``create_backbone``."""

from __future__ import annotations

import torch

from sslkit.backbones import create_backbone


def test_resnet18_cifar_stem_and_features() -> None:
    model = create_backbone("resnet18_cifar").eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 512) and model.num_features == 512
    assert model.forward_features(x).shape == (2, 512, 4, 4)  # stride 8 overall: 32 -> 4


def test_channels_last_does_not_change_features() -> None:
    torch.manual_seed(0)
    nchw = create_backbone("resnet18_cifar", channels_last=False).eval()
    nhwc = create_backbone("resnet18_cifar", channels_last=True).eval()
    nhwc.load_state_dict(nchw.state_dict())
    assert nhwc.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(nhwc(x), nchw(x), atol=1e-4, rtol=1e-4)


def test_other_timm_names_pass_through() -> None:
    model = create_backbone("resnet18", channels_last=True)
    assert model.num_classes == 0 and model(torch.randn(1, 3, 64, 64)).shape == (1, 512)
