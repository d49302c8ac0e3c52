"""The properties verified on every example, and how each one measures error.

A check looks at one :class:`Evaluation` (outputs and gradients in the mode, and the same in
float64 on the same rounded inputs) and returns ``None`` or a :class:`Violation` whose message
is quantitative: how many elements, the first bad index and value, and which output or gradient.

Error is normwise: ``max|out - ref| / max(max|ref|, floor)`` over the elements where both are
finite (non-finite values are the finite checks' business). ``floor`` (default 1, a target's
``error_floor``) makes the error absolute for values smaller than it, so an output that is zero
in exact arithmetic does not turn one rounding error into an infinite relative error. Lower it
for targets whose outputs are legitimately tiny.

Conditioning: an input can make a function ill-conditioned (a near-constant row under a large
offset for a normalization, logits near a softmax tie at a tiny temperature); then no algorithm
in that precision does better than the change that rounding the inputs alone causes. The runner
measures that *sensitivity* by re-evaluating the float64 reference on inputs perturbed by one
eps of the compute dtype, and the error check only fails when the error exceeds both the mode's
tolerance and ``CONDITIONING_FACTOR`` times the sensitivity. What is left is the formula's fault.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from .modes import Mode

__all__ = [
    "CHECKS",
    "Check",
    "Evaluation",
    "Violation",
    "default_checks",
    "measure",
]

DEFAULT_ERROR_FLOOR = 1.0
CONDITIONING_FACTOR = 10.0
# A backward pass chains more roundings and cancels terms of size ~1/sigma (a normalization's
# gradient at a near-saturated row), which input perturbations cannot reveal: gradients get
# this factor on top of the mode's tolerance.
GRADIENT_TOLERANCE_FACTOR = 10.0


@dataclass
class Evaluation:
    """One example evaluated in a mode and in float64; tensors keyed like ``out`` and ``grad['x']``."""

    mode: Mode
    outputs: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor]
    ref_outputs: dict[str, torch.Tensor] | None
    ref_grads: dict[str, torch.Tensor] | None
    # normwise change of each float64 output/gradient when the inputs move by one eps
    sensitivity: dict[str, float] = field(default_factory=dict)
    _errors: dict[tuple[str, float], tuple[float, torch.Tensor]] = field(
        default_factory=dict, repr=False
    )

    def error(self, key: str, floor: float) -> tuple[float, torch.Tensor]:
        """Normwise error of output or gradient ``key`` against float64: computed once, read by
        the figures and by the error checks."""
        if (key, floor) not in self._errors:
            got, ref = (
                (self.grads, self.ref_grads)
                if key in self.grads
                else (self.outputs, self.ref_outputs)
            )
            assert ref is not None
            self._errors[(key, floor)] = normwise_error(got[key], ref[key], floor)
        return self._errors[(key, floor)]


@dataclass(frozen=True)
class Violation:
    """A failed check on one example: what failed and the numbers that show it."""

    check: str
    message: str
    figures: dict[str, float] = field(default_factory=dict)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _index(flat_index: int, shape: torch.Size) -> tuple[int, ...]:
    idx = []
    for n in reversed(shape):
        idx.append(flat_index % n)
        flat_index //= n
    return tuple(reversed(idx))


def _as_f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


def _max_abs(t: torch.Tensor) -> float:
    t = _as_f64(t)
    t = t[~torch.isnan(t)]
    return float(t.abs().max()) if t.numel() else math.nan


def normwise_error(
    out: torch.Tensor, ref: torch.Tensor, floor: float
) -> tuple[float, torch.Tensor]:
    """``max|out - ref| / max(max|ref|, floor)`` over finite pairs, and the element-wise difference."""
    o, r = _as_f64(out), _as_f64(ref)
    if o.shape != r.shape:
        return math.inf, torch.full(o.shape, math.inf)
    both = torch.isfinite(o) & torch.isfinite(r)
    diff = torch.where(both, (o - r).abs(), torch.zeros_like(o))
    scale = max(float(r[both].abs().max()) if both.any() else 0.0, floor)
    return (float(diff.max()) / scale if diff.numel() else 0.0), diff / scale


def measure(ev: Evaluation, floor: float = DEFAULT_ERROR_FLOOR) -> dict[str, float]:
    """The figures a report keeps per example: largest |output|, gradient norm, errors."""
    eps = ev.mode.facts.eps
    figures = {
        "max_abs_output": max((_max_abs(t) for t in ev.outputs.values()), default=0.0),
        "grad_norm": _grad_norm(ev.grads),
    }
    if ev.ref_outputs is not None:
        err = max((ev.error(k, floor)[0] for k in ev.outputs), default=0.0)
        figures["error"] = err
        figures["error_eps"] = err / eps
    if ev.ref_grads is not None and ev.grads:
        figures["grad_error"] = max((ev.error(k, floor)[0] for k in ev.grads), default=0.0)
    return figures


def _grad_norm(grads: Mapping[str, torch.Tensor]) -> float:
    total = 0.0
    for g in grads.values():
        n = float(torch.linalg.vector_norm(_as_f64(g)))
        total += n * n
    return math.sqrt(total)


class Check(ABC):
    """A property of one evaluation. Subclasses set ``name`` and implement ``__call__``."""

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, ev: Evaluation) -> Violation | None: ...


def _nonfinite_message(
    what: str, t: torch.Tensor, ref: torch.Tensor | None, mode: Mode
) -> str | None:
    bad = ~torch.isfinite(t.detach())
    n_bad = int(bad.sum())
    if not n_bad:
        return None
    flat = int(bad.reshape(-1).nonzero()[0])
    idx = _index(flat, t.shape)
    value = float(t.detach().reshape(-1)[flat])
    kinds = "/".join(
        k for k, m in (("nan", torch.isnan(t)), ("inf", torch.isinf(t))) if bool(m.any())
    )
    msg = (
        f"{what} is not finite: {n_bad} of {t.numel()} elements ({100 * n_bad / max(t.numel(), 1):.3g}%) "
        f"are {kinds}; first at index {idx}: {value}"
    )
    if ref is not None and ref.shape == t.shape:
        r = float(_as_f64(ref).reshape(-1)[flat])
        limit = mode.facts.max
        if not math.isfinite(r):
            msg += (
                f". The float64 reference is {r} there too: the formula breaks down even in float64"
            )
        elif abs(r) > limit:
            msg += (
                f". Representability limit: the float64 value {_fmt(r)} exceeds {mode.facts.dtype}'s "
                f"largest finite value {_fmt(limit)}"
            )
        else:
            msg += f"; the float64 value there is {_fmt(r)}"
    return msg


class FiniteForward(Check):
    """Every floating output is finite."""

    name = "finite_forward"

    def __call__(self, ev: Evaluation) -> Violation | None:
        for key, t in ev.outputs.items():
            ref = ev.ref_outputs.get(key) if ev.ref_outputs else None
            msg = _nonfinite_message(f"output {key!r}", t, ref, ev.mode)
            if msg:
                return Violation(self.name, msg)
        return None


class FiniteGradients(Check):
    """Every gradient with respect to a floating input or parameter is finite."""

    name = "finite_gradients"

    def __call__(self, ev: Evaluation) -> Violation | None:
        for key, g in ev.grads.items():
            ref = ev.ref_grads.get(key) if ev.ref_grads else None
            msg = _nonfinite_message(key, g, ref, ev.mode)
            if msg:
                return Violation(self.name, msg)
        return None


@dataclass(frozen=True)
class OutputBound(Check):
    """No output element exceeds ``max_abs`` in magnitude."""

    max_abs: float
    name = "output_bound"

    def __call__(self, ev: Evaluation) -> Violation | None:
        for key, t in ev.outputs.items():
            m = _max_abs(t)
            if m > self.max_abs:
                return Violation(
                    self.name,
                    f"output {key!r}: max |x| = {_fmt(m)} > bound {_fmt(self.max_abs)}",
                    {"max_abs_output": m},
                )
        return None


@dataclass(frozen=True)
class GradientBound(Check):
    """The total gradient norm stays at most ``max_norm``."""

    max_norm: float
    name = "gradient_bound"

    def __call__(self, ev: Evaluation) -> Violation | None:
        norm = _grad_norm(ev.grads)
        if norm > self.max_norm:
            worst = max(
                ev.grads, key=lambda k: float(torch.linalg.vector_norm(_as_f64(ev.grads[k])))
            )
            return Violation(
                self.name,
                f"gradient norm {_fmt(norm)} > bound {_fmt(self.max_norm)} (largest part: {worst})",
                {"grad_norm": norm},
            )
        return None


@dataclass(frozen=True)
class ReferenceError(Check):
    """Outputs (or gradients) agree with the float64 reference within the mode's tolerance."""

    tolerances: Mapping[str, float] | None = None
    floor: float = DEFAULT_ERROR_FLOOR
    on_gradients: bool = False

    @property
    def name(self) -> str:  # type: ignore[override]
        return "gradient_error" if self.on_gradients else "error"

    def __call__(self, ev: Evaluation) -> Violation | None:
        got, ref = (ev.grads, ev.ref_grads) if self.on_gradients else (ev.outputs, ev.ref_outputs)
        if ref is None:
            return None
        tol = ev.mode.tolerance(dict(self.tolerances) if self.tolerances else None)
        if self.on_gradients:
            tol *= GRADIENT_TOLERANCE_FACTOR
        for key, t in got.items():
            label = key if self.on_gradients else f"output {key!r}"
            err, rel = ev.error(key, self.floor)
            allowed = max(tol, CONDITIONING_FACTOR * ev.sensitivity.get(key, 0.0))
            if err <= allowed:
                continue
            if math.isinf(err):
                return Violation(
                    self.name,
                    f"{label}: shape {tuple(t.shape)} differs from the float64 reference's {tuple(ref[key].shape)}",
                )
            over = rel > tol
            flat = int(rel.reshape(-1).argmax())
            idx = _index(flat, t.shape)
            v = float(_as_f64(t).reshape(-1)[flat])
            r = float(_as_f64(ref[key]).reshape(-1)[flat])
            eps = ev.mode.facts.eps
            msg = (
                f"{label}: normwise error {_fmt(err)} ({_fmt(err / eps)} eps of {ev.mode.facts.dtype}) "
                f"> tolerance {_fmt(tol)} for {ev.mode.name}; {int(over.sum())} of {t.numel()} elements "
                f"exceed it; greatest difference at index {idx}: {_fmt(v)} vs float64 {_fmt(r)}"
            )
            sens = ev.sensitivity.get(key)
            if sens is not None:
                msg += f" (perturbing the inputs by one eps moves the float64 value by only {_fmt(sens)})"
            return Violation(self.name, msg, {"error": err, "error_eps": err / eps})
        return None


def default_checks(
    *,
    tolerances: Mapping[str, float] | None = None,
    error_floor: float = DEFAULT_ERROR_FLOOR,
    max_output: float | None = None,
    max_grad_norm: float | None = None,
    gradient_error: bool = True,
) -> list[Check]:
    """The checks in the order they run; the first violated one is the example's finding."""
    checks: list[Check] = [FiniteForward(), FiniteGradients()]
    if max_output is not None:
        checks.append(OutputBound(max_output))
    if max_grad_norm is not None:
        checks.append(GradientBound(max_grad_norm))
    checks.append(ReferenceError(tolerances, error_floor))
    if gradient_error:
        checks.append(ReferenceError(tolerances, error_floor, on_gradients=True))
    return checks


CHECKS: tuple[str, ...] = (
    "exception",
    "finite_forward",
    "finite_gradients",
    "output_bound",
    "gradient_bound",
    "error",
    "gradient_error",
)
