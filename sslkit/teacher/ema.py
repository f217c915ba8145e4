"""The EMA teacher every EMA objective uses: frozen copies, the momentum schedule, one update call.

An objective builds it once in ``__init__`` and updates it first thing in ``training_step``::

    self.teacher = EMATeacher(self, ["backbone", "projection_head"], ema_momentum, ema_momentum_end)
    ...
    m = self.teacher.update(self.global_step, self.total_steps())

The first line puts a frozen copy of each named student module on the objective as
``teacher_<name>`` (``self.teacher_backbone``, ``self.teacher_projection_head``), so checkpoints,
``eval_backbone()`` and publishing see plain ``teacher_*`` state-dict keys. The second moves every
teacher toward its student with the momentum of this step, exactly under fp32, bf16 and ZeRO-3
(:mod:`sslkit.teacher.update`), and returns that momentum for the log.

**Recipe parameters** (the same two names in every EMA objective and recipe)::

    ema_momentum: 0.996      # the teacher's momentum at step 0
    ema_momentum_end: 1.0    # ... at the last step, cosine-increased in between (BYOL, Grill et al., 2020)

``momentum`` alone is the optimizer's (SGD/LARS) momentum. The names I-JEPA used before,
``momentum_start`` / ``momentum_end``, are refused with a pointer to these (``sslkit.config``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch import nn

from sslkit.errors import UserError
from sslkit.optim.schedules import cosine_increase
from sslkit.teacher.update import make_teacher, update_momentum

TEACHER_PREFIX = "teacher_"


class EMATeacher:
    """Frozen EMA copies of an objective's student modules and their cosine momentum schedule.

    Not an ``nn.Module``: the teacher copies are registered on ``owner`` (``teacher_<name>``), and the
    update looks student and teacher up by name on every call, so a module replaced after
    construction (e.g. a converted norm layer) is the one updated.

    Args:
        owner: The objective holding the student modules as attributes.
        students: Attribute names of the student modules to copy (``["backbone", "projection_head"]``).
        momentum: ``ema_momentum``, the momentum at step 0.
        momentum_end: ``ema_momentum_end``, the momentum at the last step.

    Raises:
        UserError: a momentum outside ``[0, 1]``.
    """

    def __init__(self, owner: nn.Module, students: Sequence[str], momentum: float, momentum_end: float = 1.0) -> None:
        for key, value in (("ema_momentum", momentum), ("ema_momentum_end", momentum_end)):
            if not 0.0 <= value <= 1.0:
                raise UserError(f"{type(owner).__name__}: {key}={value} is outside [0, 1]; the teacher keeps this"
                                " fraction of itself each step (0.99-0.9999 in the papers)")
        self.owner, self.names = owner, tuple(students)
        self.momentum, self.momentum_end = float(momentum), float(momentum_end)
        for name in self.names:
            setattr(owner, TEACHER_PREFIX + name, make_teacher(getattr(owner, name)))

    def momentum_at(self, step: int, total_steps: int) -> float:
        """Cosine increase from ``momentum`` at step 0 to ``momentum_end`` at ``total_steps``."""
        return cosine_increase(step, total_steps, self.momentum, self.momentum_end)

    def update(self, step: int, total_steps: int) -> float:
        """Move every teacher toward its student (``t = m t + (1 - m) s``); returns this step's ``m``."""
        m = self.momentum_at(step, total_steps)
        for name in self.names:
            update_momentum(getattr(self.owner, name), getattr(self.owner, TEACHER_PREFIX + name), m)
        return m

    def modules(self) -> Iterator[nn.Module]:
        """The teacher copies, in the order of ``students``."""
        return (getattr(self.owner, TEACHER_PREFIX + name) for name in self.names)

    def __repr__(self) -> str:
        return f"EMATeacher({list(self.names)}, momentum={self.momentum} -> {self.momentum_end})"
