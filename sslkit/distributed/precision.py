"""``precision: auto``: bf16 mixed precision where the hardware multiplies bf16 natively, fp32 elsewhere.

bf16 autocast pays only where bf16 matrix multiplies run in hardware: CUDA devices with bf16
(Ampere and later), and CPUs with Intel AMX (``amx_bf16``) or AVX-512-BF16 (``avx512_bf16``).
Elsewhere oneDNN emulates bf16 and a bf16 step is several times *slower* than fp32 (measured on an
AVX2-only AMD EPYC: bf16 GEMM at a fraction of the fp32 rate, see docs/benchmarks.md), so ``auto``
resolves to ``32-true`` there.

The resolved value replaces ``auto`` in the run's config before anything is instantiated, so the
saved ``config.yaml`` (and a resumed run) names the precision that actually ran.
"""

from __future__ import annotations

from typing import Any, Literal, Union

import torch

from sslkit.hardware import CPU_BF16_FLAGS, cpu_flags, cpu_has_native_bf16  # noqa: F401 (re-exported)

AUTO = "auto"
BF16 = "bf16-mixed"
FP32 = "32-true"


def cuda_has_bf16() -> bool:
    """True when a CUDA device is visible and supports bf16 natively (compute capability >= 8.0)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_precision(precision: Any, accelerator: Any = "auto") -> tuple[Any, str]:
    """Resolve ``"auto"`` to ``"bf16-mixed"`` or ``"32-true"`` for the accelerator the run will use.

    Args:
        precision: The trainer's ``precision`` value; anything but ``"auto"`` is returned unchanged.
        accelerator: The trainer's ``accelerator`` (``"auto"``, ``"cpu"``, ``"gpu"``, ``"cuda"``, ...).

    Returns:
        ``(precision, reason)``: the value to run with and a human-readable why.
    """
    if precision != AUTO:
        return precision, "set explicitly"
    accelerator = str(accelerator or "auto").lower()
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        if cuda_has_bf16():
            return BF16, f"{torch.cuda.get_device_name()} has native bf16"
        return FP32, f"{torch.cuda.get_device_name()} has no native bf16"
    if accelerator in ("auto", "cpu"):
        flags = cpu_flags()
        native = sorted(flag for flag in CPU_BF16_FLAGS if flag in flags)
        if native:
            return BF16, f"the CPU has {' and '.join(native)}"
        return FP32, "the CPU has neither AMX-BF16 nor AVX-512-BF16 (bf16 would be emulated, slower than fp32)"
    return FP32, f"no bf16 detection for accelerator {accelerator!r}"


def accept_auto(parser: Any, key: str = "trainer.precision") -> None:
    """Let a LightningCLI parser accept ``auto`` for ``key`` (Lightning's own type does not list it)."""
    for action in parser._actions:
        if action.dest == key:
            action._typehint = Union[Literal["auto"], action._typehint]  # type: ignore[valid-type]
            return
    raise KeyError(f"accept_auto: the parser has no {key!r} argument")


def resolve_config_precision(trainer_config: Any) -> None:
    """Replace ``precision: auto`` in a parsed trainer config by its resolved value, and say so."""
    if trainer_config.precision != AUTO:
        return
    resolved, reason = resolve_precision(trainer_config.precision, trainer_config.accelerator)
    trainer_config.precision = resolved
    print(f"sslkit: precision: auto -> {resolved} ({reason})", flush=True)
