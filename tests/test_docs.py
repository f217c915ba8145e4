"""Documentation links: every relative link in README.md and docs/*.md resolves from the file's folder
(links to ``../shared``, outside the repository, where that folder exists)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc: Path) -> None:
    targets = [t for t in LINK.findall(doc.read_text()) if "://" not in t and not t.startswith("mailto:")]
    # Links out of the repository (the house style in ../shared) are checked where that folder is present.
    checked = [t for t in targets if (doc.parent / t).resolve().is_relative_to(REPO) or (REPO.parent / "shared").is_dir()]
    missing = [t for t in checked if not (doc.parent / t).exists()]
    assert missing == [], f"{doc.name}: links to missing files"


def test_design_links_the_house_style() -> None:
    text = (REPO / "docs" / "design.md").read_text()
    assert "](../../shared/STYLE.md)" in text
