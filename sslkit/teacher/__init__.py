"""EMA teachers: :class:`EMATeacher` for objectives, and the exact update and shadow state beneath it.

See :mod:`sslkit.teacher.ema` for the one-line use and the recipe parameter names
(``ema_momentum``, ``ema_momentum_end``), :mod:`sslkit.teacher.update` for the fp32/bf16/ZeRO-3 update.
"""

from sslkit.teacher.ema import TEACHER_PREFIX, EMATeacher
from sslkit.teacher.update import (
    SHADOW_ATTR,
    ema_state_dict,
    is_zero3_param,
    load_ema_state_dict,
    make_teacher,
    update_momentum,
)

__all__ = [
    "SHADOW_ATTR",
    "TEACHER_PREFIX",
    "EMATeacher",
    "ema_state_dict",
    "is_zero3_param",
    "load_ema_state_dict",
    "make_teacher",
    "update_momentum",
]
