"""Provenance shared by evaluation results and published folders: file hashes and package versions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions(packages: Sequence[str] = ("sslkit", "timm", "torch")) -> dict[str, str]:
    """``{package: installed version or "unknown"}``."""
    out = {}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out
