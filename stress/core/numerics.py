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
    "TensorSummary",
    "as_float64",
    "dtype_facts",
    "format_number",
    "max_abs",
    "norm_of",
    "normwise_error",
    "summarize",
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


@dataclass(frozen=True)
class TensorSummary:
    """What the checks read of one output or gradient, against its float64 reference if any."""

    nonfinite: int  # NaN or inf elements
    max_abs: float  # as :func:`max_abs`
    norm: float  # the 2-norm, in float64
    compared: bool  # a reference of the same shape exists: the fields below mean something
    largest_diff: float = 0.0  # max |value - reference| where both are finite
    largest_ref: float = 0.0  # max |reference| where both are finite
    lost: bool = False  # non-finite somewhere the reference is finite

    def error(self, floor: float) -> float:
        """The normwise error of :func:`normwise_error`: ``inf`` when the shapes differ."""
        if not self.compared:
            return math.inf
        return self.largest_diff / max(self.largest_ref, floor) if self.largest_diff else 0.0


def summarize(
    values: Mapping[str, torch.Tensor], references: Mapping[str, torch.Tensor] | None
) -> dict[str, TensorSummary]:
    """Every figure of :class:`TensorSummary` for several tensors, with one synchronisation.

    The figures are those of :func:`max_abs`, :func:`norm_of` and :func:`normwise_error` computed
    separately, in one pass per tensor; the checks then touch a tensor again only to describe a
    violation.
    """
    stats: list[torch.Tensor] = []
    layout: list[tuple[str, bool, int]] = []
    for key, t in values.items():
        # the value stays in its own dtype (a 16-bit tensor is a quarter of its float64 copy);
        # reductions and the difference from the reference are computed in float64
        v = t.detach().cpu()
        ref = references.get(key) if references is not None else None
        compared = ref is not None and tuple(ref.shape) == tuple(v.shape)
        if not v.numel():
            layout.append((key, compared, 0))
            continue
        magnitude = v.abs()
        finite = magnitude < math.inf  # False for NaN too; cheaper than torch.isfinite
        parts = [
            finite.logical_not().sum(dtype=torch.float64),
            magnitude.nan_to_num(nan=-1.0, posinf=math.inf).max().double(),  # -1: all NaN
            torch.linalg.vector_norm(v, dtype=torch.float64),
        ]
        if compared:
            assert ref is not None
            r = as_float64(ref)
            ref_magnitude = r.abs()
            known = ref_magnitude < math.inf
            both = finite & known
            parts += [
                torch.where(both, (r - v).abs(), 0.0).max(),
                torch.where(both, ref_magnitude, 0.0).max(),
                (known & ~finite).sum(dtype=torch.float64),
            ]
        stats += parts
        layout.append((key, compared, len(parts)))
    figures = torch.stack(stats).tolist() if stats else []
    out: dict[str, TensorSummary] = {}
    at = 0
    for key, compared, n in layout:
        if not n:  # an empty tensor
            out[key] = TensorSummary(0, math.nan, 0.0, compared)
            continue
        f = figures[at : at + n]
        at += n
        largest = f[1] if f[1] >= 0 else math.nan
        if compared:
            out[key] = TensorSummary(int(f[0]), largest, f[2], True, f[3], f[4], bool(f[5]))
        else:
            out[key] = TensorSummary(int(f[0]), largest, f[2], False)
    return out


def norm_of(t: torch.Tensor) -> float:
    """The 2-norm of one tensor, accumulated in float64."""
    return float(torch.linalg.vector_norm(as_float64(t)))


def total_norm(tensors: Iterable[torch.Tensor] | Mapping[str, torch.Tensor]) -> float:
    """The 2-norm of several tensors together (gradients), never overflowing a narrow dtype.

    Per-tensor norms are computed in float32 (float64 when a tensor is) by a fused kernel where
    all tensors share a device (``_foreach_norm`` with ``dtype=``: a float16 gradient of norm 1e5
    does not become ``inf``), then combined in float64.
    """
    items = list(tensors.values() if isinstance(tensors, Mapping) else tensors)
    if not items:
        return 0.0
    first = items[0]
    if all(t.device == first.device for t in items) and all(t.is_floating_point() for t in items):
        wide = torch.float64 if any(t.dtype == torch.float64 for t in items) else torch.float32
        norms = torch._foreach_norm(items, 2, dtype=wide)
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
