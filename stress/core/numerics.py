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
    """Every figure of :class:`TensorSummary` for several tensors, in one synchronisation when
    everything is finite (and one more for the tensors where something is not).

    The figures are those of :func:`max_abs`, :func:`norm_of` and :func:`normwise_error` computed
    separately; the checks then touch a tensor again only to describe a violation. When a tensor
    and its reference are finite (almost every example), four passes give them all — the extremes
    of the value, of the reference and of their difference, and the norm; NaN and inf propagate
    through those extremes, so the rest is computed with masks only when they are not finite.
    """
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    out: dict[str, TensorSummary] = {}
    for key, t in values.items():
        ref = references.get(key) if references is not None else None
        compared = ref is not None and tuple(ref.shape) == tuple(t.shape)
        if not t.numel():
            out[key] = TensorSummary(0, math.nan, 0.0, compared)
        else:
            pairs[key] = (t, ref if compared else None)
    if not pairs:
        return out
    stats: list[torch.Tensor] = []
    for t, ref in pairs.values():
        v = as_float64(t)  # one float64 copy at a time: the reductions do not keep it alive
        stats += [*torch.aminmax(v), torch.linalg.vector_norm(v)]
        if ref is not None:
            r = as_float64(ref)
            stats += [*torch.aminmax(r - v), *torch.aminmax(r)]
    figures = iter(torch.stack(stats).tolist())
    masked: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    for key, (t, ref) in pairs.items():
        low, high, norm = next(figures), next(figures), next(figures)
        if ref is None:
            if math.isfinite(low) and math.isfinite(high):
                out[key] = TensorSummary(0, _magnitude(low, high), norm, False)
            else:
                masked[key] = (t, ref)
            continue
        d_low, d_high, r_low, r_high = (next(figures) for _ in range(4))
        if all(math.isfinite(x) for x in (low, high, r_low, r_high)):
            diff, largest_ref = _magnitude(d_low, d_high), _magnitude(r_low, r_high)
            out[key] = TensorSummary(0, _magnitude(low, high), norm, True, diff, largest_ref, False)
        else:
            masked[key] = (t, ref)
    out.update(_summarize_nonfinite(masked))
    return {key: out[key] for key in values}


def _magnitude(low: float, high: float) -> float:
    """The largest |x| of a tensor from its extremes; an all-zero tensor's is 0.0, not -0.0."""
    return abs(max(-low, high))


def _summarize_nonfinite(
    pairs: Mapping[str, tuple[torch.Tensor, torch.Tensor | None]],
) -> dict[str, TensorSummary]:
    """:func:`summarize` for tensors (or their references) holding NaN or inf, with masks."""
    if not pairs:
        return {}
    stats: list[torch.Tensor] = []
    for t, ref in pairs.values():
        v = as_float64(t)
        magnitude = v.abs()
        finite = magnitude < math.inf  # False for NaN too; cheaper than torch.isfinite
        stats += [
            finite.logical_not().sum(dtype=torch.float64),
            magnitude.nan_to_num(nan=-1.0, posinf=math.inf).max(),  # -1: all NaN
            torch.linalg.vector_norm(v),
        ]
        if ref is not None:
            r = as_float64(ref)
            ref_magnitude = r.abs()
            known = ref_magnitude < math.inf
            both = finite & known
            stats += [
                torch.where(both, (r - v).abs(), 0.0).max(),
                torch.where(both, ref_magnitude, 0.0).max(),
                (known & ~finite).sum(dtype=torch.float64),
            ]
    figures = iter(torch.stack(stats).tolist())
    out: dict[str, TensorSummary] = {}
    for key, (_, ref) in pairs.items():
        nonfinite, largest, norm = next(figures), next(figures), next(figures)
        largest = largest if largest >= 0 else math.nan
        if ref is None:
            out[key] = TensorSummary(int(nonfinite), largest, norm, False)
        else:
            diff, largest_ref, lost = next(figures), next(figures), next(figures)
            out[key] = TensorSummary(
                int(nonfinite), largest, norm, True, diff, largest_ref, bool(lost)
            )
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
