"""One EMA teacher: every EMA objective builds ``EMATeacher`` and updates it once per ``training_step``;
no code outside ``sslkit.teacher`` runs its own EMA update or momentum schedule."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import sslkit
import sslkit.objectives as objectives
from sslkit.objectives.base import SSLObjective

PACKAGE = Path(sslkit.__file__).parent
OWN_EMA = ("update_momentum(", "cosine_increase(")  # the EMA step and its schedule


def _ema_objectives() -> list[type[SSLObjective]]:
    classes = [c for c in vars(objectives).values() if inspect.isclass(c) and issubclass(c, SSLObjective)]
    return [c for c in classes if "EMATeacher(" in inspect.getsource(c.__init__)]


def test_every_ema_objective_updates_its_teacher_in_one_call() -> None:
    found = {c.__name__ for c in _ema_objectives()}
    assert {"BYOL", "MoCoV3", "TiCo", "DINO", "IJEPA"} <= found
    for cls in _ema_objectives():
        step = ast.parse(textwrap.dedent(inspect.getsource(cls.training_step)))
        calls = [n for n in ast.walk(step)
                 if isinstance(n, ast.Call) and ast.unparse(n.func) == "self.teacher.update"]
        assert len(calls) == 1, f"{cls.__name__}.training_step calls self.teacher.update {len(calls)} times"


def test_no_ema_update_outside_the_teacher_package() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name in ("teacher", "optim"):  # the teacher, and the schedule's definition
            continue
        text = path.read_text()
        offenders += [f"{path.relative_to(PACKAGE)}: {name}" for name in OWN_EMA if name in text]
    assert offenders == []
