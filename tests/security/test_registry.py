"""The registry is explicit and complete: every objective class is listed, every entry is a class of its slot."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from torch import nn

import sslkit.objectives
from sslkit.errors import RefusedInput
from sslkit.objectives.base import SSLObjective
from sslkit.objectives.registry import OBJECTIVES, SLOTS, build_aux_loss, import_class, lookup


def _objective_classes() -> list[str]:
    found = []
    for info in pkgutil.iter_modules(sslkit.objectives.__path__):
        module = importlib.import_module(f"sslkit.objectives.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, SSLObjective) and cls is not SSLObjective and cls.__module__ == module.__name__:
                found.append(f"{cls.__module__}.{cls.__qualname__}")
    return sorted(found)


def test_every_objective_class_is_registered() -> None:
    found = _objective_classes()
    assert len(found) >= 11
    missing = sorted(set(found) - set(OBJECTIVES))
    assert not missing, f"add these to OBJECTIVES in sslkit/objectives/registry.py: {missing}"


@pytest.mark.parametrize("slot", ["objective", *SLOTS])
def test_every_entry_is_a_class_of_its_slot(slot: str) -> None:
    for path in OBJECTIVES if slot == "objective" else SLOTS[slot]:
        cls = import_class(path)
        assert f"{cls.__module__}.{cls.__qualname__}" == path  # canonical spelling, importable
        if slot == "objective":
            assert issubclass(cls, SSLObjective)
        else:
            assert not issubclass(cls, SSLObjective)  # an objective is never a nested part
        if slot == "aux_loss":
            assert issubclass(cls, nn.Module) and "in_dim" in inspect.signature(cls).parameters


def test_package_re_export_is_the_same_class() -> None:
    assert lookup("sslkit.objectives.SimCLR", "objective", "x") == "sslkit.objectives.simclr.SimCLR"
    assert lookup("sslkit.transforms.SimCLRViews", "transform", "x") == "sslkit.transforms.views.SimCLRViews"
    with pytest.raises(RefusedInput, match="x = 'sslkit.transforms.SimCLRViews' is not an sslkit aux loss"):
        lookup("sslkit.transforms.SimCLRViews", "aux_loss", "x")


def test_import_class_refuses_what_is_not_listed() -> None:
    with pytest.raises(RefusedInput, match="'os.system' is not in sslkit's registry"):
        import_class("os.system")


def test_build_aux_loss() -> None:
    spec = {"class_path": "sslkit.objectives.rotation.FourFoldRotation", "init_args": {"hidden_dim": 4}}
    aux = build_aux_loss(spec, 8)
    assert aux.head is not None and build_aux_loss(None, 8) is None
    with pytest.raises(RefusedInput, match=r"aux_loss must be \{'class_path'"):
        build_aux_loss({"class_path": spec["class_path"], "init_arg": {}}, 8)
    with pytest.raises(RefusedInput, match="aux_loss.class_path = 'os.system'"):
        build_aux_loss({"class_path": "os.system", "init_args": {"command": "true"}}, 8)
