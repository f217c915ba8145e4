"""Lazy package faces (PEP 562): ``from sslkit.evaluation import knn_classify`` works as before, yet
``sslkit eval --help`` (which needs only ``sslkit.evaluation.cli``) imports no torch or FAISS.

A package lists its public names with the submodule that defines each; a name is imported on first
use::

    __all__ = lazy_face(__name__, {"knn_classify": "knn", "rankme": "rankme", ...})
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _LazyFace(types.ModuleType):
    """A package module whose exported names are imported from their submodules on first access."""

    _exports: dict[str, str]

    def __getattr__(self, name: str) -> Any:  # called only for names not set yet
        exports = self.__dict__.get("_exports", {})
        if name not in exports:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{self.__name__}.{exports[name]}"), name)
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing submodule ``rankme`` binds it on the package; the face keeps the function ``rankme``
        # there instead, as the eager ``from .rankme import rankme`` used to.
        exports = self.__dict__.get("_exports", {})
        if isinstance(value, types.ModuleType) and exports.get(name) == name and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*self.__dict__, *self.__dict__.get("_exports", {})})


def lazy_face(package: str, exports: dict[str, str]) -> list[str]:
    """Make ``package`` load its public names on first access; returns its ``__all__``.

    Args:
        package: the package's ``__name__`` (its module must be in ``sys.modules``, as during its import).
        exports: public name -> the package's submodule (relative name) that defines it.

    Returns:
        The sorted public names, for ``__all__``.
    """
    module = sys.modules[package]
    module.__dict__["_exports"] = dict(exports)
    module.__class__ = _LazyFace
    return sorted(exports)
