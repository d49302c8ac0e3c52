"""The properties verified on every example, and how each failure is judged.

A check looks at one :class:`Evaluation` — outputs and gradients in the mode, and the same in
float64 on the same rounded inputs — and returns the :class:`Violation` of each output or
gradient it finds wrong, with a quantitative message: how many elements, the first bad index and
value, and which output or gradient.

Each violation has an outcome (:class:`~stress.core.outcomes.Outcome`):

* ``fail`` — the function could do better on these rounded inputs;
* ``limit`` — no implementation in that dtype could: the float64 value is beyond the dtype's
  largest finite value or below its resolution, or the float64 result jumps under a
  perturbation of the inputs a thousand times smaller than one eps (a kink, a tie, a clamp:
  rounding lands on the other side).

Error is normwise (:func:`~stress.core.numerics.normwise_error`). Smooth ill-conditioning is no
excuse: a one-eps input change that moves the float64 result a lot explains an error in the
message, but the check still fails — a stable implementation computes the given rounded inputs
accurately — unless the target asks for backward-error semantics (``backward_error=True``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .modes import Mode
from .numerics import (
    TensorSummary,
    as_float64,
    dtype_facts,
    format_number,
    max_abs,
    normwise_error,
    summarize,
    unravel,
)
from .options import FunctionOptions
from .outcomes import Outcome

__all__ = [
    "DISCONTINUITY_SCALE",
    "Check",
    "Evaluation",
    "Violation",
    "checks_for",
    "measure",
]

# A probe this many times smaller than one eps moving the float64 result by at least half the
# error means the result is discontinuous there: no implementation can avoid the error.
DISCONTINUITY_SCALE = 1e-3
# backward-error semantics: an error up to this many times the one-eps change is excused
BACKWARD_ERROR_FACTOR = 10.0

# (output and gradient tensors of the float64 reference) on inputs moved by `scale` eps, `sign`
Probe = Callable[[float, int], tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None]


@dataclass
class Evaluation:
    """One example evaluated in a mode and in float64; tensors keyed like ``out`` and ``grad['x']``."""

    mode: Mode
    outputs: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor]
    ref_outputs: dict[str, torch.Tensor] | None = None
    ref_grads: dict[str, torch.Tensor] | None = None
    # what the function returned when it had no floating-point output ("None", "an int tensor")
    no_float_output: str | None = None
    # why the float64 reference cannot be trusted ("no float64 reference: ...", "degraded: ...")
    reference_note: str | None = None
    probe: Probe | None = None
    # a trusted implementation's results on the same inputs (``reference=``), and its name
    given_outputs: dict[str, torch.Tensor] | None = None
    given_grads: dict[str, torch.Tensor] | None = None
    given_name: str = ""
    # the float64 inputs the reference ran on (what ``subnormal_inputs`` looks at)
    inputs: dict[str, Any] = field(default_factory=dict, repr=False)
    _errors: dict[tuple[str, float], tuple[float, torch.Tensor]] = field(
        default_factory=dict, repr=False
    )
    _summaries: dict[str, TensorSummary] | None = field(default=None, repr=False)
    _probes: dict[
        tuple[float, int], tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None
    ] = field(default_factory=dict, repr=False)

    def reference(self, key: str) -> torch.Tensor | None:
        refs = self.ref_grads if key in self.grads else self.ref_outputs
        return refs.get(key) if refs is not None else None

    def given(self, key: str) -> torch.Tensor | None:
        given = self.given_grads if key in self.grads else self.given_outputs
        return given.get(key) if given is not None else None

    def value(self, key: str) -> torch.Tensor:
        return self.grads[key] if key in self.grads else self.outputs[key]

    def summary(self, key: str) -> TensorSummary:
        """The figures of output or gradient ``key``; every key's are computed together, once."""
        if self._summaries is None:
            references = {**(self.ref_outputs or {}), **(self.ref_grads or {})}
            self._summaries = summarize({**self.outputs, **self.grads}, references)
        return self._summaries[key]

    @property
    def subnormal_inputs(self) -> bool:
        """An input is below the compute dtype's smallest normal: the dtype cannot resolve it."""
        tiny = self.mode.facts.tiny
        return any(
            bool(((x != 0) & (x.abs() < tiny)).any())
            for x in self.inputs.values()
            if isinstance(x, torch.Tensor) and x.is_floating_point()
        )

    def error(self, key: str, floor: float) -> tuple[float, torch.Tensor]:
        """Normwise error of output or gradient ``key`` against float64 and the element-wise
        scaled difference, computed once (the figure alone: ``summary(key).error(floor)``)."""
        if (key, floor) not in self._errors:
            ref = self.reference(key)
            assert ref is not None
            self._errors[(key, floor)] = normwise_error(self.value(key), ref, floor)
        return self._errors[(key, floor)]

    def change(self, key: str, scale: float, floor: float) -> float | None:
        """How far the float64 value of ``key`` moves when the inputs move by ``scale`` eps
        (the larger of the two opposite directions), or None when no probe ran."""
        ref = self.reference(key)
        if self.probe is None or ref is None:
            return None
        worst: float | None = None
        for sign in (1, -1):
            if (scale, sign) not in self._probes:
                self._probes[(scale, sign)] = self.probe(scale, sign)
            moved = self._probes[(scale, sign)]
            if moved is None:
                continue
            got = (moved[1] if key in self.grads else moved[0]).get(key)
            if got is not None:
                change = normwise_error(got, ref, floor)[0]
                worst = change if worst is None else max(worst, change)
        return worst


@dataclass(frozen=True)
class Violation:
    """A failed check on one output or gradient of one example."""

    check: str
    message: str
    key: str = ""  # the output or gradient, e.g. "out" or "grad['x']"
    outcome: Outcome = Outcome.FAIL
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> tuple[str, str]:
        """What makes two violations the same failure: the check and the output or gradient."""
        return self.check, self.key


class Check(ABC):
    """A property of one evaluation. Subclasses set ``name`` and implement ``__call__``."""

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, ev: Evaluation) -> list[Violation]: ...


def _dtype_limit(value_dtype: torch.dtype, mode: Mode) -> torch.dtype:
    """The dtype that bounds a value: its own, or the compute dtype for a Python float."""
    return value_dtype if value_dtype != torch.float64 else mode.compute_dtype


def _nonfinite(
    check: str, label: str, key: str, t: torch.Tensor, ev: Evaluation
) -> Violation | None:
    bad = ~torch.isfinite(t.detach())
    n_bad = int(bad.sum())
    if not n_bad:
        return None
    flat_bad = bad.reshape(-1).nonzero().reshape(-1)
    first = int(flat_bad[0])
    value = float(t.detach().reshape(-1)[first])
    kinds = "/".join(
        k for k, m in (("nan", torch.isnan(t)), ("inf", torch.isinf(t))) if bool(m.any())
    )
    msg = (
        f"{label} is not finite: {n_bad} of {t.numel()} elements ({100 * n_bad / max(t.numel(), 1):.3g}%) "
        f"are {kinds}; first at index {unravel(first, t.shape)}: {value}"
    )
    ref, whose = ev.reference(key), "float64"
    if ref is None:  # a target that cannot run in float64: the trusted reference says
        ref, whose = ev.given(key), ev.given_name
    if ref is None or ref.shape != t.shape:
        return Violation(check, msg, key)
    facts = dtype_facts(_dtype_limit(t.dtype, ev.mode))
    r = as_float64(ref).reshape(-1)[flat_bad]
    first_ref = float(r[0])
    if not bool(torch.isfinite(r).all()):
        at = int((~torch.isfinite(r)).nonzero()[0])
        where = "there" if at == 0 else f"at index {unravel(int(flat_bad[at]), t.shape)}"
        breaks = (
            "the formula breaks down even in float64"
            if whose == "float64"
            else "the reference fails there too"
        )
        given = ev.given(key) if whose == "float64" else None
        if given is not None and given.shape == t.shape:
            trusted = float(as_float64(given).reshape(-1)[int(flat_bad[at])])
            if math.isfinite(trusted):
                breaks += f", where {ev.given_name} gives {format_number(trusted)}"
        msg += f". The {whose} value is {float(r[at])} {where} too: {breaks}"
        return Violation(check, msg, key)
    if bool((r.abs() > facts.max).all()):
        msg += (
            f". Representability limit: the {whose} value {format_number(first_ref)} exceeds "
            f"{facts.name}'s largest finite value {format_number(facts.max)}"
        )
        return Violation(check, msg, key, Outcome.LIMIT)
    return Violation(check, msg + f"; the {whose} value there is {format_number(first_ref)}", key)


class FloatingOutput(Check):
    """The function returned at least one floating-point value to check."""

    name = "floating_output"

    def __call__(self, ev: Evaluation) -> list[Violation]:
        if ev.no_float_output is None:
            return []
        return [
            Violation(
                self.name,
                f"no floating-point output to check: the function returned {ev.no_float_output}",
            )
        ]


class FiniteForward(Check):
    """Every floating output is finite."""

    name = "finite_forward"

    def __call__(self, ev: Evaluation) -> list[Violation]:
        found = (
            _nonfinite(self.name, f"output {k!r}", k, t, ev)
            for k, t in ev.outputs.items()
            if ev.summary(k).nonfinite
        )
        return [x for x in found if x is not None]


class FiniteGradients(Check):
    """Every gradient with respect to a floating input or parameter is finite."""

    name = "finite_gradients"

    def __call__(self, ev: Evaluation) -> list[Violation]:
        found = (
            _nonfinite(self.name, k, k, g, ev)
            for k, g in ev.grads.items()
            if ev.summary(k).nonfinite
        )
        return [x for x in found if x is not None]


@dataclass(frozen=True)
class OutputBound(Check):
    """No output element exceeds ``max_abs`` in magnitude."""

    max_abs: float
    name = "output_bound"

    def __call__(self, ev: Evaluation) -> list[Violation]:
        out = []
        for key in ev.outputs:
            m = ev.summary(key).max_abs
            if m > self.max_abs:
                out.append(
                    Violation(
                        self.name,
                        f"output {key!r}: max |x| = {format_number(m)} > bound {format_number(self.max_abs)}",
                        key,
                        figures={"max_abs_output": m},
                    )
                )
        return out


@dataclass(frozen=True)
class GradientBound(Check):
    """The total gradient norm stays at most ``max_norm``."""

    max_norm: float
    name = "gradient_bound"

    def __call__(self, ev: Evaluation) -> list[Violation]:
        norm = _grad_norm(ev)
        if norm <= self.max_norm:
            return []
        worst = max(ev.grads, key=lambda k: ev.summary(k).norm)
        return [
            Violation(
                self.name,
                f"gradient norm {format_number(norm)} > bound {format_number(self.max_norm)} (largest part: {worst})",
                figures={"grad_norm": norm},
            )
        ]


@dataclass(frozen=True)
class Float64Agreement(Check):
    """Outputs (or gradients) agree with the float64 reference within the mode's tolerance."""

    tolerances: Mapping[str, float]
    floor: float
    on_gradients: bool = False
    backward_error: bool = False

    @property
    def name(self) -> str:  # type: ignore[override]
        return "gradient_error" if self.on_gradients else "error"

    def tolerance(self, mode: Mode) -> float:
        return (
            mode.gradient_tolerance(self.tolerances)
            if self.on_gradients
            else mode.tolerance(self.tolerances)
        )

    def __call__(self, ev: Evaluation) -> list[Violation]:
        got = ev.grads if self.on_gradients else ev.outputs
        if (ev.ref_grads if self.on_gradients else ev.ref_outputs) is None:
            return []
        tol = self.tolerance(ev.mode)
        out = []
        for key in got:
            if ev.reference(key) is None:
                continue
            err = ev.summary(key).error(self.floor)
            if err > tol:
                violation = self._judge(ev, key, err, tol)
                if violation is not None:
                    out.append(violation)
        return out

    def _judge(self, ev: Evaluation, key: str, err: float, tol: float) -> Violation | None:
        t, ref = ev.value(key), ev.reference(key)
        assert ref is not None
        label = key if self.on_gradients else f"output {key!r}"
        eps = ev.mode.facts.eps
        figures = (
            {"grad_error": err} if self.on_gradients else {"error": err, "error_eps": err / eps}
        )
        if math.isinf(err):
            return Violation(
                self.name,
                f"{label}: shape {tuple(t.shape)} differs from the float64 reference's {tuple(ref.shape)}",
                key,
                figures=figures,
            )
        _, rel = ev.error(key, self.floor)
        flat = int(rel.reshape(-1).argmax())
        here = float(as_float64(t).reshape(-1)[flat])
        there = float(as_float64(ref).reshape(-1)[flat])
        msg = (
            f"{label}: normwise error {format_number(err)} ({format_number(err / eps)} eps of "
            f"{ev.mode.facts.name}) > tolerance {format_number(tol)} for {ev.mode.name}; "
            f"{int((rel > tol).sum())} of {t.numel()} elements exceed it; greatest difference at "
            f"index {unravel(flat, t.shape)}: {format_number(here)} vs float64 {format_number(there)}"
        )
        facts = dtype_facts(_dtype_limit(t.dtype, ev.mode))
        biggest = max_abs(ref)
        if biggest > facts.max:
            msg += (
                f". Representability limit: float64 reaches {format_number(biggest)}, beyond "
                f"{facts.name}'s largest finite value {format_number(facts.max)}"
            )
            return Violation(self.name, msg, key, Outcome.LIMIT, figures)
        if biggest < facts.tiny and self.floor < facts.tiny:
            msg += f". Below resolution: the whole float64 value is smaller than {facts.name}'s smallest normal"
            return Violation(self.name, msg, key, Outcome.LIMIT, figures)
        small = ev.change(key, DISCONTINUITY_SCALE, self.floor)
        if small is not None and small >= 0.5 * err:
            if ev.subnormal_inputs:
                msg += (
                    f". Below resolution: the inputs hold values smaller than {ev.mode.facts.name}'s "
                    "smallest normal, and moving them by a fraction of it moves the float64 result "
                    f"by {format_number(small)}"
                )
            else:
                msg += (
                    f". Discontinuity: moving the inputs by {DISCONTINUITY_SCALE:g} eps moves the "
                    f"float64 result by {format_number(small)} (a kink, a tie or a clamp that rounding crosses)"
                )
            return Violation(self.name, msg, key, Outcome.LIMIT, figures)
        if self.backward_error:
            one_eps = ev.change(key, 1.0, self.floor)
            if one_eps is not None and err <= BACKWARD_ERROR_FACTOR * one_eps:
                return None
        return Violation(self.name, msg, key, Outcome.FAIL, figures)


@dataclass(frozen=True)
class ReferenceMismatch(Check):
    """Outputs and gradients agree with the trusted reference given as ``reference=``.

    The target's own float64 run, when there is one, tells why they differ: if it agrees with
    the reference, the mode's precision is at fault; if it differs too, the target computes
    something else (a semantic failure).
    """

    tolerances: Mapping[str, float]
    gradient_tolerances: Mapping[str, float]
    floor: float
    name = "reference_mismatch"

    def __call__(self, ev: Evaluation) -> list[Violation]:
        if ev.given_outputs is None:
            return []
        out = []
        for key, t in (*ev.outputs.items(), *ev.grads.items()):
            given = ev.given(key)
            if given is None:
                continue
            on_gradient = key in ev.grads
            tol = (
                ev.mode.gradient_tolerance(self.gradient_tolerances)
                if on_gradient
                else ev.mode.tolerance(self.tolerances)
            )
            err, rel = normwise_error(t, given, self.floor)
            if err <= tol:
                continue
            label = key if on_gradient else f"output {key!r}"
            if math.isinf(err):
                out.append(
                    Violation(
                        self.name,
                        f"{label}: shape {tuple(t.shape)} differs from {ev.given_name}'s {tuple(given.shape)}",
                        key,
                    )
                )
                continue
            flat = int(rel.reshape(-1).argmax())
            msg = (
                f"{label} differs from {ev.given_name} by {format_number(err)} (normwise) > tolerance "
                f"{format_number(tol)} for {ev.mode.name}; at index {unravel(flat, t.shape)}: "
                f"{format_number(float(as_float64(t).reshape(-1)[flat]))} vs "
                f"{format_number(float(as_float64(given).reshape(-1)[flat]))}"
            )
            own = ev.reference(key)
            if own is None:
                msg += (
                    ". The target cannot run in float64, so precision cannot be told from semantics"
                )
            else:
                own_err = normwise_error(own, given, self.floor)[0]
                if own_err > tol:
                    msg += (
                        f". Semantic: the target differs from the reference even in float64 (by "
                        f"{format_number(own_err)}): it computes something else"
                    )
                else:
                    msg += (
                        f". Precision: the target's own float64 run agrees with the reference (to "
                        f"{format_number(own_err)}); its {ev.mode.name} run does not"
                    )
            facts = dtype_facts(_dtype_limit(t.dtype, ev.mode))
            outcome = Outcome.LIMIT if max_abs(given) > facts.max else Outcome.FAIL
            out.append(Violation(self.name, msg, key, outcome, {"reference_error": err}))
        return out


def conditioning_note(ev: Evaluation, violation: Violation, floor: float) -> str:
    """How ill-conditioned the float64 result is at this example: explains an error, never excuses it."""
    if violation.check not in ("error", "gradient_error") or violation.outcome != Outcome.FAIL:
        return ""
    change = ev.change(violation.key, 1.0, floor)
    if change is None:
        return ""
    err = violation.figures.get("error", math.nan)
    share = f" ({change / err:.2g}× the error)" if err > 0 else ""
    return f"; a one-eps input change moves the float64 result by {format_number(change)}{share}"


def checks_for(options: FunctionOptions) -> list[Check]:
    """The checks of a function target, in the order they run."""
    checks: list[Check] = [FloatingOutput(), FiniteForward(), FiniteGradients()]
    if options.max_output is not None:
        checks.append(OutputBound(options.max_output))
    if options.max_grad_norm is not None:
        checks.append(GradientBound(options.max_grad_norm))
    checks.append(
        Float64Agreement(options.tolerances, options.error_floor, False, options.backward_error)
    )
    if options.gradient_error:
        checks.append(
            Float64Agreement(
                options.gradient_tolerances, options.error_floor, True, options.backward_error
            )
        )
    if options.reference is not None:
        checks.append(
            ReferenceMismatch(options.tolerances, options.gradient_tolerances, options.error_floor)
        )
    return checks


def measure(ev: Evaluation, floor: float) -> dict[str, float]:
    """The figures a report keeps per example: largest |output|, gradient norm, errors.

    An output or gradient that is not finite where float64 is counts as an infinite error.
    """
    eps = ev.mode.facts.eps
    figures = {
        "max_abs_output": max((ev.summary(k).max_abs for k in ev.outputs), default=0.0),
        "grad_norm": _grad_norm(ev),
    }
    if ev.ref_outputs is not None and ev.outputs:
        err = max((_error_or_inf(ev, k, floor) for k in ev.outputs), default=0.0)
        figures["error"] = err
        figures["error_eps"] = err / eps
    if ev.ref_grads is not None and ev.grads:
        figures["grad_error"] = max((_error_or_inf(ev, k, floor) for k in ev.grads), default=0.0)
    return figures


def _error_or_inf(ev: Evaluation, key: str, floor: float) -> float:
    if ev.reference(key) is None:
        return 0.0
    summary = ev.summary(key)
    return math.inf if summary.lost else summary.error(floor)


def _grad_norm(ev: Evaluation) -> float:
    """The total gradient norm: the 2-norm of every gradient's 2-norm."""
    return math.sqrt(sum(ev.summary(k).norm ** 2 for k in ev.grads))
