"""EMATeacher: frozen copies on the owner, lightly's schedule and update, look-up by name, bad momenta."""

from __future__ import annotations

import copy

import pytest
import torch
from lightly.models.utils import update_momentum as lightly_update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from sslkit.errors import UserError
from sslkit.teacher import EMATeacher


class Owner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
        self.head = nn.Linear(6, 3)


def _moved(owner: Owner) -> None:
    with torch.no_grad():
        for p in [*owner.backbone.parameters(), *owner.head.parameters()]:
            p.add_(torch.randn_like(p))
        owner.backbone[1].running_mean.add_(1.0)


def test_copies_are_frozen_attributes_of_the_owner() -> None:
    torch.manual_seed(0)
    owner = Owner()
    teacher = EMATeacher(owner, ["backbone", "head"], 0.99)
    assert list(teacher.modules()) == [owner.teacher_backbone, owner.teacher_head]
    assert {k.split(".")[0] for k in owner.state_dict()} == {"backbone", "head", "teacher_backbone", "teacher_head"}
    for s, t in zip(owner.backbone.state_dict().values(), owner.teacher_backbone.state_dict().values()):
        assert torch.equal(s, t) and s.data_ptr() != t.data_ptr()
    assert not any(p.requires_grad for m in teacher.modules() for p in m.parameters())


def test_update_matches_lightly_schedule_and_update() -> None:
    torch.manual_seed(0)
    owner = Owner()
    teacher = EMATeacher(owner, ["backbone", "head"], 0.9, 0.99)
    reference = {name: copy.deepcopy(getattr(owner, f"teacher_{name}")) for name in ("backbone", "head")}
    total = 10
    for step in range(4):
        _moved(owner)
        m = teacher.update(step, total)
        # BYOL's tau = 1 - (1 - tau_0)(cos(pi k / K) + 1) / 2; lightly's cosine_schedule divides by K - 1.
        assert m == pytest.approx(cosine_schedule(step, total + 1, 0.9, 0.99), abs=1e-12)
        for name, ref in reference.items():
            lightly_update_momentum(getattr(owner, name), ref, m)
            for a, b in zip(ref.parameters(), getattr(owner, f"teacher_{name}").parameters()):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # Buffers (BatchNorm statistics) are copied, not averaged.
    assert torch.equal(owner.teacher_backbone[1].running_mean, owner.backbone[1].running_mean)
    assert teacher.update(total, total) == pytest.approx(0.99)


def test_update_looks_modules_up_by_name() -> None:
    torch.manual_seed(0)
    owner = Owner()
    teacher = EMATeacher(owner, ["head"], 0.5, 0.5)
    owner.head = nn.Linear(6, 3)  # replaced after construction (e.g. a converted layer)
    expected = [0.5 * t + 0.5 * s for t, s in zip(owner.teacher_head.parameters(), owner.head.parameters())]
    teacher.update(0, 10)
    for e, t in zip(expected, owner.teacher_head.parameters()):
        torch.testing.assert_close(t, e.detach())


@pytest.mark.parametrize("kwargs", [{"momentum": 1.2}, {"momentum": 0.99, "momentum_end": -0.1}])
def test_momentum_outside_unit_interval_is_a_user_error(kwargs: dict) -> None:
    with pytest.raises(UserError, match=r"^Owner: ema_momentum(_end)?=.* is outside \[0, 1\]"):
        EMATeacher(Owner(), ["head"], **kwargs)
