"""sslkit: self-supervised pretraining for vision (Lightning objectives, timm backbones, WebDataset, FAISS).

Importing ``sslkit`` imports nothing heavy: ``sslkit.load_pretrained`` loads its module on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_pretrained"]


def __getattr__(name: str) -> Any:
    if name == "load_pretrained":
        from sslkit.publish.loading import load_pretrained

        return load_pretrained
    raise AttributeError(f"module 'sslkit' has no attribute {name!r}")
