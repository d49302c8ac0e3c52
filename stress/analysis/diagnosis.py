"""Diagnosis: where the first NaN/Inf or large error appeared in a counterexample, and why.

The shrunk counterexample is replayed once under a ``TorchDispatchMode`` that sees every aten
op, forward and backward (the optimizer's too). For each op working in the mode's dtypes it
records input and output statistics and the user's source line — from the call stack in the
forward pass, from the forward traceback that anomaly mode keeps on the autograd node in the
backward pass. The first op that turns finite inputs into a non-finite output is the culprit;
failing that, the first op whose result differs from the same op evaluated in float64 on the
same inputs by more than the mode's tolerance. A table of known mechanisms (:data:`MECHANISMS`)
turns the culprit into a sentence with a fix hint; an unknown case still gets op, line and
statistics. The search never runs under the tracer: only the counterexample does.
"""

from __future__ import annotations

import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..core.modes import Mode
from ..report.render import describe_diagnosis, stats_text

__all__ = ["MECHANISMS", "Diagnosis", "OpRecord", "diagnose", "user_frame_from_text"]

_TORCH_DIR = os.path.dirname(torch.__file__)
_STRESS_DIR = os.path.dirname(os.path.dirname(__file__))
_SKIP_OPS = frozenset(
    {
        "aten.detach",
        "aten.view",
        "aten.t",
        "aten.expand",
        "aten.clone",
        "aten.lift_fresh",
        "aten.alias",
        # uninitialised memory: whatever the allocator left there is not a value to judge
        "aten.empty",
        "aten.empty_like",
        "aten.empty_strided",
        "aten.new_empty",
        "aten.new_empty_strided",
    }
)


def _stats(tensors: list[torch.Tensor]) -> dict[str, float]:
    floats = [
        t.detach()
        for t in tensors
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()
    ]
    if not floats:
        return {}
    flat = torch.cat([t.reshape(-1).double() for t in floats])
    finite = flat[torch.isfinite(flat)]
    counts = torch.stack([(flat == 0).sum(), torch.isinf(flat).sum(), torch.isnan(flat).sum()])
    zeros, inf, nan = (float(c) for c in counts.tolist())
    lo = hi = math.nan
    if finite.numel():
        lo, hi = (float(x) for x in torch.stack(torch.aminmax(finite)).tolist())
    return {
        "numel": float(flat.numel()),
        "min": lo,
        "max": hi,
        "max_abs": max(abs(lo), abs(hi)),
        "zeros": zeros,
        "inf": inf,
        "nan": nan,
    }


@dataclass
class OpRecord:
    """One traced op: what it is, where the user called it, and its numbers."""

    op: str  # "aten::exp"
    phase: str  # forward or backward
    location: str | None  # "losses.py:12 in info_nce"
    node: str | None  # the autograd node in the backward pass, e.g. "SqrtBackward0"
    dtype: str
    inputs: dict[str, float]
    output: dict[str, float]
    arguments: list[dict[str, float]] = field(default_factory=list)  # the first two tensors, each
    scalars: list[float] = field(default_factory=list)  # Python numbers among the arguments
    scalar_first: bool = False  # the first argument is one of them: 2 ** x, 1 - x
    error: float | None = None  # normwise error against the same op in float64


@dataclass
class Diagnosis:
    """The culprit op, and the mechanism that explains it when one is known."""

    kind: str  # "non-finite" or "error"
    record: OpRecord
    mechanism: str | None
    explanation: str

    def __str__(self) -> str:
        r = self.record
        return (
            f"{describe_diagnosis(self.to_dict())}\n    inputs: {stats_text(r.inputs)}\n"
            f"    output: {stats_text(r.output)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mechanism": self.mechanism,
            "explanation": self.explanation,
            **asdict(self.record),
        }


# ------------------------------------------------------------------------------ tracer


_GUARD_FILE = os.path.join(_STRESS_DIR, "steps", "guard.py")


def _user_frame(frames: Iterable[tuple[str, int, str]]) -> str | None:
    """The user's line that made the op, or None when torch-stress itself made it (the gradient
    seed, a copy of the inputs): walking out from the op (``frames`` as (file, line, function),
    innermost first), torch's own frames (and ``GuardedStep``, a library the user calls) are
    skipped; the first other frame decides."""
    for filename, lineno, name in frames:
        if (
            filename.startswith(_TORCH_DIR)
            or filename == _GUARD_FILE
            or "<frozen" in filename
            or "site-packages/hypothesis" in filename
        ):
            continue
        if filename.startswith(_STRESS_DIR):
            return None
        return f"{os.path.basename(filename)}:{lineno} in {name}"
    return None


def _frames_from(frame: FrameType | None) -> Iterator[tuple[str, int, str]]:
    """``frame`` and its callers, innermost first (without reading source lines)."""
    while frame is not None:
        code = frame.f_code
        yield code.co_filename, frame.f_lineno, code.co_name
        frame = frame.f_back


_TB_LINE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def user_frame_from_text(text: str) -> str | None:
    """The user's line in a formatted traceback (``file.py:12 in fn``), as :func:`_user_frame`."""
    frames = [(m.group(1), int(m.group(2)), m.group(3)) for m in _TB_LINE.finditer(text)]
    return _user_frame(reversed(frames))


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _upcast(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.detach().to(torch.float64)
    if isinstance(value, (list, tuple)):
        return type(value)(_upcast(v) for v in value)
    return value


class _Tracer(TorchDispatchMode):
    def __init__(
        self, dtypes: frozenset[torch.dtype], tolerance: float, phases: frozenset[str]
    ) -> None:
        super().__init__()
        self.dtypes, self.tolerance, self.phases = dtypes, tolerance, phases
        self.records: list[OpRecord] = []
        self.first_nonfinite: OpRecord | None = None
        self.first_nonfinite_input: OpRecord | None = None
        self.first_error: OpRecord | None = None

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        ins = [t for a in (*args, *kwargs.values()) for t in _tensors(a)]
        floats = [t for t in ins if t.is_floating_point()]
        random = (
            torch.Tag.nondeterministic_seeded in func.tags
        )  # initializers, dropout: nothing to compare
        if random or name in _SKIP_OPS or not floats or len(self.records) > 20000:
            return func(*args, **kwargs)
        inputs = _stats(floats)  # before the op: an in-place op overwrites its inputs
        out = func(*args, **kwargs)
        outs = [t for t in _tensors(out) if t.is_floating_point()]
        if not any(t.dtype in self.dtypes for t in (*floats, *outs)):
            return out  # the float64 reference, or another dtype: not the mode's computation
        node = torch._C._current_autograd_node()
        if node is not None:
            # anomaly mode keeps the forward stack on the node, as a list of formatted lines
            tb: Any = getattr(node, "metadata", {}).get("traceback_")
            text = "".join(tb) if isinstance(tb, list) else tb
            location = user_frame_from_text(text) if isinstance(text, str) else None
            phase = "backward"
        else:
            location, phase = _user_frame(_frames_from(sys._getframe(1))), "forward"
            if location is None:
                return out  # torch-stress's own op: never the one to blame
        if phase not in self.phases:
            return out
        record = OpRecord(
            op=name.replace("aten.", "aten::"),
            phase=phase,
            location=location,
            node=node.name() if node is not None else None,
            dtype=str((outs or floats)[0].dtype).replace("torch.", ""),
            inputs=inputs,
            output=_stats(outs),
            arguments=[_stats([t]) for t in ins[:2] if t.is_floating_point()],
            scalars=[
                float(a) for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)
            ],
            scalar_first=bool(args)
            and isinstance(args[0], (int, float))
            and not isinstance(args[0], bool),
        )
        self.records.append(record)
        inputs_finite = not (record.inputs.get("inf") or record.inputs.get("nan"))
        outputs_bad = bool(record.output.get("inf") or record.output.get("nan"))
        # blamed: NaN made from NaN-free inputs, or Inf made from Inf-free inputs that is not a
        # constant the user passed (masked_fill(mask, -inf) is intended)
        made_nan = bool(record.output.get("nan")) and not record.inputs.get("nan")
        made_inf = (
            bool(record.output.get("inf"))
            and not record.inputs.get("inf")
            and all(math.isfinite(s) for s in record.scalars)
        )
        moves_data = name in ("aten._to_copy", "aten.copy_")  # casts and copies compute nothing
        if not inputs_finite and self.first_nonfinite_input is None and not moves_data:
            self.first_nonfinite_input = record
        comparable = not (name.endswith("_") or "foreach" in name)  # in-place: the inputs are gone
        if self.first_nonfinite is None and (made_nan or made_inf):
            self.first_nonfinite = record
        elif self.first_error is None and inputs_finite and not outputs_bad and outs and comparable:
            record.error = self._error(func, args, kwargs, outs)
            if record.error is not None and record.error > self.tolerance:
                self.first_error = record
        return out

    def _error(self, func: Any, args: Any, kwargs: Any, outs: list[torch.Tensor]) -> float | None:
        try:
            with torch.utils._python_dispatch._disable_current_modes():
                ref = _tensors(func(*_upcast(args), **_upcast(kwargs)))
        except Exception:  # noqa: BLE001 - an op without a float64 kernel has no error figure
            return None
        refs = [r for r in ref if r.is_floating_point()]
        if len(refs) != len(outs):
            return None
        worst = 0.0
        for o, r in zip(outs, refs, strict=True):
            if o.shape != r.shape or not o.numel():
                continue
            diff = (o.detach().double() - r).abs().max()
            scale = max(float(r.abs().max()), 1.0)
            worst = max(worst, float(diff) / scale)
        return worst


# -------------------------------------------------------------------------- mechanisms

Mechanism = Callable[[OpRecord, list[OpRecord], Mode], str | None]


def _dtype_max(r: OpRecord) -> float:
    return float(torch.finfo(getattr(torch, r.dtype)).max)


def _cast_overflow(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op not in ("aten::_to_copy", "aten::copy_") or not r.output.get("inf"):
        return None
    return (
        f"cast overflow: values up to {r.inputs['max_abs']:.4g} become inf when cast to {r.dtype} (max {_dtype_max(r):.6g}) "
        "— a float32 result (often a gradient flowing back to low-precision inputs) is too large: rescale, clamp, "
        f"or keep that tensor in {_wider(r.dtype)}"
    )


def _exp_overflow(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op != "aten::exp" or not r.output.get("inf"):
        return None
    threshold = math.log(_dtype_max(r))
    return (
        f"exp overflow: max input {r.inputs['max']:.4g} > {threshold:.4g}, the overflow threshold of exp in {r.dtype} "
        "— subtract the row max first (torch.logsumexp / torch.softmax / log_softmax)"
    )


def _eps_underflow(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if not any(k in r.op for k in ("div", "rsqrt", "reciprocal", "sqrt", "log", "pow")):
        return None
    tiny = float(torch.finfo(getattr(torch, r.dtype)).tiny) * float(
        torch.finfo(getattr(torch, r.dtype)).eps
    )
    for earlier in reversed(trace[: trace.index(r)]):
        small = [s for s in earlier.scalars if 0 < abs(s) < tiny / 2]
        if ("add" in earlier.op or "clamp" in earlier.op) and small and earlier.dtype == r.dtype:
            return (
                f"eps underflow: {small[0]:g} (added at {earlier.location or earlier.op}) rounds to 0 in {r.dtype}, "
                f"so {r.op} sees an exact 0 — use torch.finfo(dtype).tiny or a larger eps, or compute this part in {_wider(r.dtype)}"
            )
    return None


def _derivative_overflow(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    """rsqrt of a small positive number: its derivative, not the value, leaves the dtype (an
    RMSNorm whose eps is too small for float16, on a zero row)."""
    reached = r.inputs.get("max_abs", 0.0)
    if not (
        (r.node or "").startswith("Rsqrt")
        and r.phase == "backward"
        and r.output.get("inf")
        and not r.inputs.get("zeros")
        and 0 < reached < math.inf
    ):
        return None
    top = _dtype_max(r)
    bound = (2 * top) ** (-2 / 3)  # where ½·x^−1.5 reaches the dtype's max
    return (
        f"rsqrt's derivative overflows {r.dtype}: rsqrt reaches {reached:.4g}, so its input is "
        f"about {reached**-2:.3g}, and the derivative ½·x^−1.5 exceeds {top:.6g} below "
        f"x = {bound:.3g} — an eps added before the rsqrt must be at least that in {r.dtype}, "
        f"or compute the norm in {_wider(r.dtype)}"
    )


def _domain_boundary(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    node = r.node or ""
    for fn, where in (
        ("Sqrt", "0"),
        ("Rsqrt", "0"),
        ("Acos", "±1"),
        ("Asin", "±1"),
        ("Acosh", "1"),
        ("Atanh", "±1"),
        ("Norm", "0 (a zero vector)"),
        ("Pow", "0 with an exponent < 1"),
        ("Cdist", "0 (a zero distance)"),
    ):
        if node.startswith(fn) and r.phase == "backward":
            return (
                f"{fn.lower()} at the boundary of its domain: the derivative is infinite at {where} "
                "— add a margin inside the domain (sqrt(x + eps), clamp cosines to ±(1 − eps)) or use squared distances"
            )
    return None


def _zero_over_zero(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op != "aten::div" or not r.output.get("nan") or not r.inputs.get("zeros"):
        return None
    underflow = next(
        (
            t
            for t in reversed(trace[: trace.index(r)])
            if t.op == "aten::exp" and t.output.get("zeros")
        ),
        None,
    )
    cause = (
        f" after exp underflowed to 0 ({underflow.location or 'exp'}: min input {underflow.inputs['min']:.4g})"
        if underflow
        else ""
    )
    return f"0/0{cause}: numerator and denominator are both 0 — normalise in log space (softmax / log_softmax) or clamp the denominator"


def _wider(dtype: str) -> str:
    """Where to accumulate instead: float32 for the 16-bit dtypes, float64 for float32."""
    return "float64" if dtype == "float32" else "float32"


def _reduction_overflow(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op not in (
        "aten::sum",
        "aten::mean",
        "aten::cumsum",
        "aten::mm",
        "aten::bmm",
        "aten::addmm",
        "aten::matmul",
        "aten::dot",
    ) or not r.output.get("inf"):
        return None
    if r.inputs["max_abs"] >= _dtype_max(r):
        return None
    wider = _wider(r.dtype)
    return (
        f"reduction overflow in {r.dtype}: summing {int(r.inputs['numel'])} values up to {r.inputs['max_abs']:.4g} exceeds "
        f"{_dtype_max(r):.6g} — divide before summing (a mean of x / n) or accumulate in {wider} "
        f"(x.to(torch.{wider}).sum(), or dtype=torch.{wider})"
    )


def _sqrt_of_negative(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op not in ("aten::sqrt", "aten::rsqrt", "aten::pow") or not r.output.get("nan"):
        return None
    if not r.inputs or not r.inputs.get("min", 0.0) < 0:
        return None
    return (
        f"square root of a negative number: the input reaches {r.inputs['min']:.4g} — a variance computed as "
        f"E[x²] − E[x]² cancels below zero in {r.dtype}; compute it in two passes, ((x − mean)²).mean() or torch.var, "
        "or clamp_min(0) before the root"
    )


def _quotient_overflow(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op != "aten::div" or not r.output.get("inf") or not r.arguments:
        return None
    numerator = r.arguments[0]
    if len(r.arguments) > 1:
        if r.arguments[1].get("zeros"):
            return None  # a division by zero, not an overflow
        smallest = _min_abs(r.arguments[1])
    elif r.scalars and r.scalars[0] != 0:
        smallest = abs(r.scalars[0])
    else:
        return None
    why = (
        "masked entries at finfo.min divided by a temperature < 1 overflow"
        if numerator["max_abs"] >= _dtype_max(r) / 10
        else "a divisor that underflowed toward 0, such as exp of a large negative number, "
        "makes any numerator overflow"
    )
    return (
        f"quotient overflow in {r.dtype}: values up to {numerator['max_abs']:.4g} divided by values "
        f"down to {smallest:.4g} exceed {_dtype_max(r):.6g} — rescale the numerator first ({why}), "
        f"or divide in {_wider(r.dtype)}"
    )


def _min_abs(s: dict[str, float]) -> float:
    return (
        min(abs(s.get("min", 0.0)), abs(s.get("max", 0.0)))
        if s.get("min", 0) * s.get("max", 0) > 0
        else 0.0
    )


def _norm_overflow(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op not in (
        "aten::linalg_vector_norm",
        "aten::norm",
        "aten::frobenius_norm",
    ) or not r.output.get("inf"):
        return None
    if r.inputs.get("inf"):
        return None
    return (
        f"norm overflow in {r.dtype}: the squares of values up to {r.inputs['max_abs']:.4g} exceed "
        f"{_dtype_max(r):.6g} (|x| > {math.sqrt(_dtype_max(r)):.4g}) — divide by max|x| before the norm and "
        f"multiply after, or compute it in {_wider(r.dtype)}"
    )


_FUSED_NORMS = ("aten::native_layer_norm", "aten::native_group_norm", "aten::native_batch_norm")


def _statistics_overflow(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    """A fused normalization squares its input for the variance, in float32 for 16-bit inputs."""
    op = r.op.removesuffix("_backward")
    if not op.startswith(_FUSED_NORMS) or r.inputs.get("inf") or r.inputs.get("nan"):
        return None
    at = 1 if r.op.endswith("_backward") else 0  # the input itself (after grad_out)
    largest = (r.arguments[at] if len(r.arguments) > at else r.inputs).get("max_abs", 0.0)
    accumulate = "float64" if r.dtype == "float64" else "float32"
    bound = math.sqrt(float(torch.finfo(getattr(torch, accumulate)).max))
    if not largest > bound:
        return None
    return (
        f"statistics overflow: {op.removeprefix('aten::')} squares values up to {largest:.4g} in "
        f"{accumulate} for the variance, beyond {bound:.4g} (the square root of its largest value) "
        "— divide the input by its max |x| first (the normalisation does not change when eps is "
        "negligible), or bound the strategy (min_value=, max_value=) if such inputs cannot occur"
    )


def _product_overflow(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op not in (
        "aten::pow",
        "aten::mul",
        "aten::square",
        "aten::_cdist_forward",
        "aten::_euclidean_dist",
    ) or not r.output.get("inf"):
        return None
    top, biggest = _dtype_max(r), r.inputs["max_abs"]
    constant = r.scalars[0] if len(r.arguments) == 1 and r.scalars else None
    if constant is not None and r.op == "aten::mul" and constant != 0:
        return (
            f"overflow in {r.op}: inputs up to {biggest:.4g} times the constant {constant:.6g} exceed "
            f"{r.dtype}'s max {top:.6g} (|x| > {top / abs(constant):.4g} overflows) — use a smaller "
            f"constant (for loss scaling, a GradScaler's dynamic scale) or compute in {_wider(r.dtype)}"
        )
    if constant is not None and r.op == "aten::pow" and r.scalar_first and constant > 1:
        return (
            f"overflow in {r.op}: the constant {constant:g} raised to powers up to "
            f"{r.inputs['max']:.4g} exceeds {r.dtype}'s max {top:.6g} (an exponent above "
            f"{math.log(top) / math.log(constant):.4g} overflows) — bound the exponent or compute "
            f"in {_wider(r.dtype)}"
        )
    if constant is not None and r.op == "aten::pow" and not r.scalar_first and constant != 0:
        bound = top ** (1 / constant)
        side = ">" if constant > 0 else "<"
        reach = f"up to {biggest:.4g}" if constant > 0 else f"as small as {_min_abs(r.inputs):.4g}"
        return (
            f"overflow in {r.op}: inputs {reach} raised to the power {constant:g} exceed "
            f"{r.dtype}'s max {top:.6g} (|x| {side} {bound:.4g} overflows) — rescale first or "
            f"compute in {_wider(r.dtype)}"
        )
    return (
        f"overflow in {r.op}: inputs up to {biggest:.4g} give products beyond {r.dtype}'s max {top:.6g} "
        f"(|x| > {math.sqrt(top):.4g} overflows when squared) — rescale first or compute in {_wider(r.dtype)}"
    )


def _masked_row(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op not in ("aten::_softmax", "aten::_log_softmax", "aten::logsumexp") or not r.output.get(
        "nan"
    ):
        return None
    return "masked row: softmax over a row that is all −inf — keep one position unmasked or use a finite mask value and zero the row afterwards"


def _log_of_zero(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op not in ("aten::log", "aten::log2", "aten::log10") or not r.inputs.get("zeros"):
        return None
    return "log(0): the input has exact zeros (probabilities that underflowed?) — use log_softmax, clamp_min(torch.finfo(dtype).tiny) or log1p"


def _division_by_zero(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op not in ("aten::div", "aten::reciprocal", "aten::rsqrt") or not r.output.get("inf"):
        return None
    if r.op == "aten::div" and len(r.arguments) == 1 and r.scalars and r.scalars[0] == 0:
        return "division by zero: the divisor is the constant 0 (a count or length that can be 0?) — guard it, e.g. max(n, 1)"
    if not r.inputs.get("zeros"):
        return None
    return "division by zero: the denominator has exact zeros (a zero norm, variance or count) — clamp it with an eps that survives in this dtype"


def _cancellation(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op not in ("aten::sub", "aten::add", "aten::rsub") or not r.inputs or not r.output:
        return None
    big, small = r.inputs["max_abs"], r.output["max_abs"]
    eps = float(torch.finfo(getattr(torch, r.dtype)).eps)
    # the inputs' own rounding (eps·|a|), relative to what is left, beyond the tolerance
    if big > 0 and small > 0 and eps * big / small > mode.tolerance():
        bits = max(0.0, -math.log2(eps) - math.log2(big / small))
        return (
            f"catastrophic cancellation: |a − b| up to {small:.4g} ≪ |a| up to {big:.4g}, so only ~{bits:.0f} bits of "
            f"{r.dtype} survive the subtraction — subtract a common offset first (center the data), or compute in {_wider(r.dtype)}"
        )
    return None


def _inf_minus_inf(r: OpRecord, trace: list[OpRecord], mode: Mode) -> str | None:
    if r.op in ("aten::sub", "aten::add") and r.output.get("nan") and r.inputs.get("inf"):
        return "inf − inf: both operands overflowed before the subtraction"
    return None


# Checked in order; the first that explains the culprit wins.
MECHANISMS: list[tuple[str, Mechanism]] = [
    ("exp overflow", _exp_overflow),
    ("cast overflow", _cast_overflow),
    ("eps underflow", _eps_underflow),
    ("derivative overflow", _derivative_overflow),
    ("domain boundary", _domain_boundary),
    ("0/0 after underflow", _zero_over_zero),
    ("masked row", _masked_row),
    ("square root of a negative number", _sqrt_of_negative),
    ("reduction overflow", _reduction_overflow),
    ("norm overflow", _norm_overflow),
    ("statistics overflow", _statistics_overflow),
    ("quotient overflow", _quotient_overflow),
    ("product overflow", _product_overflow),
    ("log of zero", _log_of_zero),
    ("division by zero", _division_by_zero),
    ("inf minus inf", _inf_minus_inf),
    ("catastrophic cancellation", _cancellation),
]


def explain(record: OpRecord, trace: list[OpRecord], mode: Mode) -> tuple[str | None, str]:
    for name, mechanism in MECHANISMS:
        sentence = mechanism(record, trace, mode)
        if sentence:
            return name, sentence
    return None, "no known mechanism; the op's statistics are below"


# ---------------------------------------------------------------------------- entry


@contextmanager
def _quiet_anomaly_mode() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autograd.detect_anomaly(check_nan=False):
            yield


def diagnose(
    run: Callable[[], Any],
    mode: Mode,
    tolerance: float,
    *,
    wrong_but_finite: bool = False,
    forward_only: bool = False,
) -> Diagnosis | None:
    """Replay ``run`` (the counterexample) under the tracer and explain the first bad op.

    ``wrong_but_finite`` (an error finding) also blames the first catastrophic cancellation when
    no single op's own rounding exceeds the tolerance; ``forward_only`` (a finding about the
    outputs) blames only ops of the forward pass.
    """
    dtypes = frozenset({mode.storage_dtype, mode.compute_dtype})
    phases = frozenset({"forward"} if forward_only else {"forward", "backward"})
    tracer = _Tracer(dtypes, tolerance, phases)
    try:
        with _quiet_anomaly_mode(), tracer:
            run()
    except Exception:  # noqa: BLE001 - the replay may raise like the search did; the trace so far counts
        pass
    culprit, kind = (
        (tracer.first_nonfinite, "non-finite")
        if tracer.first_nonfinite
        else (tracer.first_error, "error")
    )
    if culprit is None and wrong_but_finite:  # no single op to blame: look for cancellation
        culprit = next((r for r in tracer.records if _cancellation(r, tracer.records, mode)), None)
    # an error finding's outputs are finite: an Inf that came in with the inputs is a mask's fill
    # (``masked_fill(-inf)``, a boolean attention mask), not the cause
    if culprit is None and tracer.first_nonfinite_input is not None and not wrong_but_finite:
        r = tracer.first_nonfinite_input
        sentence = (
            f"non-finite input: {r.op} received NaN/Inf that no traced op produced — it came in with the data "
            "(a corrupt batch) or from state written earlier"
        )
        return Diagnosis("non-finite", r, "non-finite input", sentence)
    if culprit is None:
        return None
    mechanism, sentence = explain(culprit, tracer.records, mode)
    return Diagnosis(kind, culprit, mechanism, sentence)
