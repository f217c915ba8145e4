"""Package layering: infrastructure never imports the methods built on it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SSLKIT = Path(__file__).resolve().parents[1] / "sslkit"
# package -> packages it must not import (directly, lazily inside functions included)
FORBIDDEN = {"distributed": ("sslkit.objectives",), "teacher": ("sslkit.objectives",),
             "losses": ("sslkit.objectives",), "data": ("sslkit.objectives",)}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_what_builds_on_it(package):
    offenders = [
        f"{path.relative_to(SSLKIT.parent)} imports {name}"
        for path in sorted((SSLKIT / package).rglob("*.py"))
        for name in sorted(imported_modules(path))
        if name.startswith(FORBIDDEN[package])
    ]
    assert not offenders, offenders
