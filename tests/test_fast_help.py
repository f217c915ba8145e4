"""``sslkit eval|publish|embed --help`` import no torch, FAISS or timm (the package faces are lazy)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import contextlib, io, sys
from sslkit.cli import main
try:
    with contextlib.redirect_stdout(io.StringIO()):
        code = main([COMMAND, "--help"])
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in ("torch", "faiss", "timm", "lightning") if m in sys.modules)
print(f"exit {code}, heavy: {heavy}")
"""


@pytest.mark.parametrize("command", ["eval", "publish", "embed"])
def test_help_imports_nothing_heavy(command: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE.replace("COMMAND", repr(command))], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "exit 0, heavy: []", done.stderr


def test_lazy_face_keeps_function_over_same_named_module() -> None:
    """Importing submodule ``sslkit.evaluation.rankme`` leaves the face's ``rankme`` the function."""
    import sslkit.evaluation.linear_probe  # noqa: F401  (binds the submodule on the package)
    from sslkit.evaluation import linear_probe, rankme

    assert callable(linear_probe) and callable(rankme)
    assert linear_probe.__module__ == "sslkit.evaluation.linear_probe"
