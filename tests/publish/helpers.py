"""Test helpers for publishing: a pickle payload that proves whether unpickling ran code."""

from __future__ import annotations

from pathlib import Path


class Payload:
    """Unpickling calls ``exec``, which writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)
