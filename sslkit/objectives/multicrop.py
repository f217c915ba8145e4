"""One forward pass per crop resolution: the multi-crop pass SwAV, DINOv2, MSN and LeJEPA share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def encode_by_resolution(fn: Callable[[Tensor], Tensor], views: Sequence[Tensor]) -> list[Tensor]:
    """``[fn(v) for v in views]``, computed with one ``fn`` call per run of consecutive equal-size views.

    Multi-crop batches are ``[global_0, global_1, local_0, ...]``: the global crops share one size and
    the local crops another, so this runs ``fn`` twice (SwAV's and DINO's ``MultiCropWrapper``), which
    fills the device better than one call per crop. BatchNorm in ``fn`` then sees each resolution's
    crops together, as in the official SwAV/DINO code.

    Args:
        fn: A batched map ``(n * B, ...) -> (n * B, ...)``, e.g. backbone + head.
        views: ``(B, C, H_i, W_i)`` tensors with one ``B``.

    Returns:
        One output per view, in the order of ``views``.
    """
    out: list[Tensor] = []
    start = 0
    while start < len(views):
        stop = start + 1
        while stop < len(views) and views[stop].shape == views[start].shape:
            stop += 1
        out += fn(torch.cat(list(views[start:stop]))).chunk(stop - start)
        start = stop
    return out
