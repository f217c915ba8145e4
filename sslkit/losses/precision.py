"""fp32 islands inside a bf16/fp16 autocast region, for the numerically sensitive parts of losses.

Under ``precision: bf16-mixed`` the backbone and heads run their matmuls in bf16 (8 mantissa bits).
What comes after them must not: contrastive logits divided by a small temperature (NT-Xent,
InfoNCE), Sinkhorn-Knopp normalisation, KoLeo nearest-neighbour distances, variance/covariance and
cross-correlation terms (VICReg, Barlow Twins, TiCo), softmax centring (DINO) lose whole digits in
bf16. Every loss with such a part is wrapped in :func:`fp32`: autocast is switched off inside it and
its bf16/fp16 tensor inputs are upcast, so it computes exactly what it computes in an fp32 run and
gradients flow back to the bf16 inputs through the cast. Outside autocast the wrapper is a no-op
for fp32 inputs.

Usage, as a decorator on a pure loss or a module's ``forward``, or around any callable::

    @fp32
    def my_loss(z_a: Tensor, z_b: Tensor) -> Tensor: ...

    loss = fp32(self.criterion)(z_a, z_b)   # a lightly loss module
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])

_LOW_PRECISION = (torch.bfloat16, torch.float16)
_AUTOCAST_DEVICES = ("cpu", "cuda")


def upcast(obj: Any) -> Any:
    """``obj`` with every bf16/fp16 tensor (also inside lists, tuples and dicts) cast to fp32."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.dtype in _LOW_PRECISION else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(upcast(o) for o in obj)
    if isinstance(obj, dict):
        return {k: upcast(v) for k, v in obj.items()}
    return obj


@contextlib.contextmanager
def autocast_off() -> Iterator[None]:
    """Disable every active autocast region (CPU and CUDA) inside the block."""
    with contextlib.ExitStack() as stack:
        for device in _AUTOCAST_DEVICES:
            if torch.is_autocast_enabled(device):
                stack.enter_context(torch.autocast(device, enabled=False))
        yield


def fp32(fn: F) -> F:
    """Wrap ``fn`` so that it runs in fp32: autocast off, low-precision tensor arguments upcast.

    Args:
        fn: A loss function, a module's ``forward`` or a loss module instance.

    Returns:
        A callable with ``fn``'s signature whose floating outputs are fp32.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with autocast_off():
            return fn(*upcast(args), **upcast(kwargs))

    functools.update_wrapper(wrapper, fn, updated=())
    return wrapper  # type: ignore[return-value]
