"""Schedules as pure functions of the step, against lightly's ``lightly.utils.scheduler``."""

from __future__ import annotations

import pytest
from lightly.utils.scheduler import cosine_schedule, cosine_warmup_schedule, linear_warmup_schedule

from sslkit.optim import cosine_increase, linear_warmup_constant, warmup_cosine

TOTAL, WARMUP = 20, 5


def test_warmup_cosine_is_lightlys_with_the_horizon_at_the_last_step() -> None:
    # lightly reaches its end value at max_steps - 1, sslkit at total_steps: the same curve one step longer.
    for step in range(TOTAL):
        expected = cosine_warmup_schedule(step, TOTAL + 1, 2.0, 0.1, WARMUP, 0.0)
        assert warmup_cosine(step, TOTAL, WARMUP, peak=2.0, end=0.1) == pytest.approx(expected, abs=1e-12)
    assert warmup_cosine(TOTAL + 3, TOTAL, WARMUP, peak=2.0, end=0.1) == pytest.approx(0.1)  # held past the end
    with pytest.raises(ValueError, match="total_steps"):
        warmup_cosine(0, 0, 0, peak=1.0)


def test_cosine_increase_and_linear_warmup_are_lightlys() -> None:
    for step in range(TOTAL):
        assert cosine_increase(step, TOTAL, 0.996, 1.0) == pytest.approx(cosine_schedule(step, TOTAL + 1, 0.996, 1.0))
    for step in range(2 * WARMUP):
        assert linear_warmup_constant(step, WARMUP, 0.04, 0.07) == pytest.approx(
            linear_warmup_schedule(step, WARMUP, 0.04, 0.07))
