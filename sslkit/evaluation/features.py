"""Frozen-backbone feature extraction: pooling choices and an in-memory pass over an eval loader.

The on-disk, resumable variant is :mod:`sslkit.evaluation.feature_store`; both share
:func:`iter_features`, so the same model and loader give the same rows either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sslkit.errors import UserError

POOL_MODES = ("pooled", "cls", "mean", "cls_mean")


@dataclass(frozen=True)
class Pooling:
    """Which vector represents an image (the test-time option of the protocol).

    Attributes:
        mode: ``"pooled"``: the backbone's own ``forward(x)`` (timm's pooling); ``"cls"``: the class
            token; ``"mean"``: mean of patch tokens (spatial mean for CNN maps); ``"cls_mean"``:
            both, concatenated (dinov2's linear-eval "avgpool" option).
        last_k: pool each of the last ``k`` blocks (final norm applied, as dinov2 does) and
            concatenate them; ``1`` uses the final output only. Needs timm's ``forward_intermediates``.
    """

    mode: str = "pooled"
    last_k: int = 1

    def __post_init__(self) -> None:
        if self.mode not in POOL_MODES:
            raise ValueError(f"unknown pooling mode {self.mode!r}; expected one of {POOL_MODES}")
        if self.last_k < 1 or (self.mode == "pooled" and self.last_k > 1):
            raise ValueError("last_k must be >= 1, and 'pooled' has no per-block variant: use cls/mean")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, D')`` of images ``x`` ``(B, C, H, W)``."""
        if self.mode == "pooled":
            return model(x)
        if self.last_k == 1:
            return self._pool(model.forward_features(x), getattr(model, "num_prefix_tokens", 0))
        if not hasattr(model, "forward_intermediates"):
            raise ValueError(f"{type(model).__name__} has no forward_intermediates: use last_k=1")
        blocks = model.forward_intermediates(
            x, indices=self.last_k, norm=True, intermediates_only=True, output_fmt="NLC",
            **({"return_prefix_tokens": True} if getattr(model, "num_prefix_tokens", 0) else {}),
        )
        return torch.cat([self._pool_block(b) for b in blocks], dim=-1)

    def _pool_block(self, block: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if isinstance(block, tuple):  # (patch tokens (B, N, D), prefix tokens (B, P, D))
            patches, prefix = block
            return self._pool(torch.cat([prefix, patches], dim=1), prefix.shape[1])
        return self._pool(block, 0)

    def _pool(self, tokens: torch.Tensor, num_prefix: int) -> torch.Tensor:
        if tokens.ndim == 4:  # CNN map (B, C, H, W): no class token, pool over space
            tokens, num_prefix = tokens.flatten(2).transpose(1, 2), 0
        if self.mode in ("cls", "cls_mean") and num_prefix == 0:
            raise ValueError(f"pooling {self.mode!r} needs a class token; this backbone has none")
        cls, mean = tokens[:, 0], tokens[:, num_prefix:].mean(dim=1)
        return {"cls": cls, "mean": mean, "cls_mean": torch.cat([cls, mean], dim=-1)}[self.mode]


@dataclass
class Features:
    """Features of one split: ``feats`` ``(N, D)`` float32, ``labels`` ``(N,)`` int64, ``keys``."""

    feats: np.ndarray
    labels: np.ndarray
    keys: list[str]

    def __len__(self) -> int:
        return int(self.feats.shape[0])


def _batch_keys(batch: dict[str, Any], num: int, offset: int) -> list[str]:
    keys = batch.get("key")
    return [str(k) for k in keys] if keys is not None else [str(offset + i) for i in range(num)]


@torch.inference_mode()
def iter_features(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    pooling: Pooling = Pooling(),
    device: str | torch.device = "cpu",
    skip: int = 0,
    progress: bool = True,
    total: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """Yield ``(feats (B, D) float32, labels (B,), keys)`` per eval batch, model in eval mode.

    Args:
        model: the backbone (timm contract), moved to ``device`` and set to eval mode here.
        loader: yields eval batches ``{"image": (B, C, H, W), "label": (B,), "key": list[str]}``.
        pooling: which vector represents an image.
        device: where the forward runs.
        skip: samples already done (a resumed extraction): the model does not see them and their
            keys come back in ``feats``-less tuples ``(None, labels, keys)`` so callers can check
            that the loader replays the same order.
        progress: tqdm bar over samples.
        total: number of samples, for the bar.
    """
    model = model.to(device).eval()
    seen = 0
    bar = tqdm(total=total, unit="img", disable=not progress, desc="extract", initial=skip)
    try:
        for batch in loader:
            x, labels = batch["image"], torch.as_tensor(batch["label"]).reshape(-1)
            num, keys = x.shape[0], _batch_keys(batch, x.shape[0], seen)
            done = min(max(skip - seen, 0), num)  # rows of this batch already on disk
            if done:
                yield None, labels[:done].numpy(), keys[:done]
            if done < num:
                feats = pooling(model, x[done:].to(device, non_blocking=True)).float().cpu().numpy()
                _check_finite(feats, keys[done:])
                yield feats, labels[done:].numpy(), keys[done:]
                bar.update(num - done)
            seen += num
    finally:
        bar.close()


def _check_finite(feats: np.ndarray, keys: list[str]) -> None:
    """Refuse NaN/inf features in one line: every score computed from them would be meaningless."""
    bad = ~np.isfinite(feats).all(axis=1)
    if bad.any():
        first = keys[int(np.flatnonzero(bad)[0])]
        raise UserError(f"features of {int(bad.sum())} of {len(keys)} images (first: {first}) are not finite: the"
                        " model's weights hold NaN/inf (a diverged run?); evaluate an earlier checkpoint")


def extract_features(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    pooling: Pooling = Pooling(),
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> Features:
    """In-memory features of every sample of ``loader`` (small sets, online monitors, tests)."""
    feats, labels, keys = [], [], []
    for f, y, k in iter_features(model, loader, pooling, device, progress=progress):
        feats.append(f)
        labels.append(y)
        keys.extend(k)
    if not feats:
        raise ValueError("the loader yielded no samples")
    return Features(np.concatenate(feats), np.concatenate(labels).astype(np.int64), keys)
