"""MoCo v3's projector and predictor MLPs against the official ``_build_mlp``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sslkit.heads import mocov3_mlp


def _official_build_mlp(
    num_layers: int, input_dim: int, mlp_dim: int, output_dim: int, last_bn: bool = True
) -> nn.Sequential:
    """``MoCo._build_mlp`` from the official ``moco/builder.py``."""
    mlp: list[nn.Module] = []
    for layer in range(num_layers):
        dim1 = input_dim if layer == 0 else mlp_dim
        dim2 = output_dim if layer == num_layers - 1 else mlp_dim
        mlp.append(nn.Linear(dim1, dim2, bias=False))
        if layer < num_layers - 1:
            mlp.append(nn.BatchNorm1d(dim2))
            mlp.append(nn.ReLU(inplace=True))
        elif last_bn:
            mlp.append(nn.BatchNorm1d(dim2, affine=False))
    return nn.Sequential(*mlp)


@pytest.mark.parametrize("num_layers,last_bn", [(3, True), (2, False)])
def test_mlp_is_the_official_mlp(num_layers: int, last_bn: bool) -> None:
    torch.manual_seed(0)
    ours, official = mocov3_mlp(num_layers, 12, 32, 8, last_bn), _official_build_mlp(num_layers, 12, 32, 8, last_bn)
    official.load_state_dict({k.removeprefix("layers."): v for k, v in ours.state_dict().items()}, strict=True)
    x = torch.randn(6, 12)
    torch.testing.assert_close(ours(x), official(x))
