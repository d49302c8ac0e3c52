"""Numbers the whole harness agrees on: dtype facts, normwise errors and gradient norms.

Every place that measures an error or a norm — the checks, the diagnosis, the training-step
checks, ``GuardedStep`` — calls these functions, so a figure means the same thing everywhere.
This module imports only torch: ``GuardedStep`` uses it without loading the rest of the harness.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

__all__ = [
    "DtypeFacts",
    "as_float64",
    "dtype_facts",
    "format_number",
    "max_abs",
    "norm_of",
    "normwise_error",
    "total_norm",
    "unravel",
]

LOW_PRECISION = frozenset({torch.float16, torch.bfloat16, torch.float32})


@dataclass(frozen=True)
class DtypeFacts:
    """What a floating dtype can represent: the numbers strategies aim at and errors are scaled by."""

    dtype: torch.dtype
    max: float
    tiny: float  # smallest positive normal
    eps: float

    @property
    def sqrt_max(self) -> float:
        return math.sqrt(self.max)

    @property
    def smallest_subnormal(self) -> float:
        return self.tiny * self.eps

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


@functools.cache
def dtype_facts(dtype: torch.dtype) -> DtypeFacts:
    """``torch.finfo`` reduced to the facts the harness uses."""
    fi = torch.finfo(dtype)
    return DtypeFacts(dtype=dtype, max=float(fi.max), tiny=float(fi.tiny), eps=float(fi.eps))


def as_float64(t: torch.Tensor) -> torch.Tensor:
    """A detached float64 copy on the CPU: every comparison happens there."""
    return t.detach().to("cpu", torch.float64)


def max_abs(t: torch.Tensor) -> float:
    """The largest magnitude, ignoring NaN (``inf`` when there is one); NaN for no number at all."""
    t = as_float64(t)
    t = t[~torch.isnan(t)]
    return float(t.abs().max()) if t.numel() else math.nan


def normwise_error(
    out: torch.Tensor, ref: torch.Tensor, floor: float
) -> tuple[float, torch.Tensor]:
    """``max|out - ref| / max(max|ref|, floor)`` and the element-wise scaled difference.

    Only elements where both are finite count: non-finite values are the finite checks' business.
    ``floor`` makes the error absolute below it, so a reference of exactly zero does not turn
    one rounding error into an infinite relative error. Differently shaped tensors give ``inf``.
    """
    o, r = as_float64(out), as_float64(ref)
    if o.shape != r.shape:
        return math.inf, torch.full(o.shape, math.inf, dtype=torch.float64)
    if not o.numel():
        return 0.0, o
    both = torch.isfinite(o) & torch.isfinite(r)
    zero = torch.zeros((), dtype=torch.float64)
    diff = torch.where(both, (o - r).abs(), zero)
    # one synchronisation for both maxima; max(diff / s) == max(diff) / s exactly
    largest_ref, largest_diff = torch.stack(
        [torch.where(both, r.abs(), zero).max(), diff.max()]
    ).tolist()
    scale = max(largest_ref, floor)
    return largest_diff / scale, diff / scale


def norm_of(t: torch.Tensor) -> float:
    """The 2-norm of one tensor, accumulated in float64."""
    return float(torch.linalg.vector_norm(as_float64(t)))


def total_norm(tensors: Iterable[torch.Tensor] | Mapping[str, torch.Tensor]) -> float:
    """The 2-norm of several tensors together (gradients), never overflowing a narrow dtype.

    Per-tensor norms are computed in float32 by a fused kernel where all tensors share a device
    (``_foreach_norm`` with ``dtype=float32``: a float16 gradient of norm 1e5 does not become
    ``inf``), then combined in float64.
    """
    items = list(tensors.values() if isinstance(tensors, Mapping) else tensors)
    if not items:
        return 0.0
    first = items[0]
    if all(t.device == first.device for t in items) and all(t.is_floating_point() for t in items):
        norms = torch._foreach_norm(items, 2, dtype=torch.float32)
        return float(torch.linalg.vector_norm(torch.stack(norms).double()))
    return math.sqrt(sum(norm_of(t) ** 2 for t in items))


def unravel(flat_index: int, shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
    """The multi-index of a flat index, as in ``numpy.unravel_index``."""
    idx = []
    for n in reversed(shape):
        idx.append(flat_index % n)
        flat_index //= n
    return tuple(reversed(idx))


def format_number(x: float) -> str:
    return f"{x:.4g}"
