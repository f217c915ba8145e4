"""Every registered objective names its paper in the class attribute ``paper`` (the model card cites it)."""

from __future__ import annotations

import re

import pytest

from sslkit.objectives.base import SSLObjective
from sslkit.objectives.registry import OBJECTIVES, import_class

CITATION = re.compile(r"^[A-Z].*?, (19|20)\d\d, .{10,}, arXiv:\d{4}\.\d{4,5}$")


@pytest.mark.parametrize("class_path", OBJECTIVES)
def test_objective_names_its_paper(class_path: str) -> None:
    cls = import_class(class_path)
    assert cls.paper, f"{class_path} sets no `paper`"
    assert "paper" in vars(cls), f"{class_path} inherits `paper` instead of naming its own"
    assert CITATION.match(cls.paper), f"{class_path}.paper = {cls.paper!r} is not 'Authors, year, Title, arXiv:ID'"


def test_papers_are_distinct() -> None:
    papers = [import_class(p).paper for p in OBJECTIVES]
    assert len(set(papers)) == len(papers)
    assert SSLObjective.paper == ""
