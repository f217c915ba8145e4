"""Package faces: every module of ``losses``, ``heads`` and ``evaluation`` is reachable from its package.

A module added without its names in the package's ``__all__`` fails here; the modules left out are
internal plumbing (named below with the reason).
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

INTERNAL = {
    "sslkit.losses": {"precision", "shapes"},  # fp32 islands and shape checks used by the losses themselves
    "sslkit.heads": set(),
    # entry point, plots, result files, kNN back ends, the CLI's and publishing's preprocessing checks
    "sslkit.evaluation": {"cli", "report", "results", "blas", "search", "matching"},
}


@pytest.mark.parametrize("package", sorted(INTERNAL))
def test_every_module_is_on_the_face(package: str) -> None:
    face = importlib.import_module(package)
    assert all(hasattr(face, name) for name in face.__all__)
    exported = {getattr(face, name).__module__ for name in face.__all__ if hasattr(getattr(face, name), "__module__")}
    modules = {f"{package}.{m.name}" for m in pkgutil.iter_modules(face.__path__) if m.name not in INTERNAL[package]}
    assert modules - exported == set(), f"{package}.__all__ exports nothing from these modules"
