"""Learning-rate and momentum schedules as pure functions of the step."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak: float, end: float = 0.0) -> float:
    """Linear warmup from 0 to ``peak`` over ``warmup_steps``, then cosine decay to ``end``.

    Args:
        step: Current optimizer step (0-based).
        total_steps: Steps in the whole run; the value reaches ``end`` there.
        warmup_steps: Length of the linear warmup.
        peak: Value at the end of warmup.
        end: Value at ``total_steps``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return end + 0.5 * (peak - end) * (1.0 + math.cos(math.pi * progress))


def cosine_increase(step: int, total_steps: int, start: float, end: float) -> float:
    """Cosine ramp from ``start`` to ``end`` (EMA momentum 0.996 -> 1, DINO/BYOL/I-JEPA)."""
    progress = min(1.0, step / max(1, total_steps))
    return end - (end - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


def linear_warmup_constant(step: int, warmup_steps: int, start: float, end: float) -> float:
    """Linear ramp from ``start`` to ``end`` over ``warmup_steps``, constant afterwards (DINO teacher temperature)."""
    if step >= warmup_steps:
        return end
    return start + (end - start) * step / max(1, warmup_steps)
