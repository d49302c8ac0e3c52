"""The corpus's judgement in plain torch: which failures a naive evaluation shows, and whether a
stable twin's is acceptable.

Evaluation is :mod:`plain_torch`'s (the harness's definitions restated with torch alone, so the
corpus is checked independently of the harness); the tolerances below apply to outputs and to
gradients alike. A non-finite value *counts* as a failure unless the float64 value there is
finite but beyond the largest finite value of the mode's compute dtype (a representability
limit).
"""

from __future__ import annotations

import torch
from plain_torch import MODES, Evaluation, compute_dtype, evaluate

__all__ = [
    "FAILURE_KINDS",
    "MODES",
    "TOLERANCES",
    "Evaluation",
    "evaluate",
    "failures",
    "stable_problems",
]

TOLERANCES: dict[str, float] = {
    "fp32": 1e-4,
    "fp16": 1e-2,
    "bf16": 5e-2,
    "amp-fp16": 1e-2,
    "amp-bf16": 5e-2,
}

FAILURE_KINDS: tuple[str, ...] = (
    "nonfinite_output",
    "nonfinite_gradient",
    "error",
    "gradient_error",
)


def counted_nonfinite(out: torch.Tensor, ref: torch.Tensor, limit: float) -> bool:
    """A NaN/Inf in ``out`` where the float64 value is non-finite too or fits the dtype."""
    o, r = out.detach().double(), ref.detach().double()
    bad = ~torch.isfinite(o)
    if o.shape != r.shape:
        return bool(bad.any())
    representable = ~torch.isfinite(r) | (r.abs() <= limit)
    return bool((bad & representable).any())


def failures(ev: Evaluation) -> set[str]:
    """The failure kinds an evaluation shows (see ``FAILURE_KINDS``)."""
    limit, tolerance = float(torch.finfo(compute_dtype(ev.mode)).max), TOLERANCES[ev.mode]
    shown: set[str] = set()
    if counted_nonfinite(ev.output, ev.ref_output, limit):
        shown.add("nonfinite_output")
    for name, g in ev.grads.items():
        ref = ev.ref_grads.get(name)
        if ref is None or counted_nonfinite(g, ref, limit):
            shown.add("nonfinite_gradient")
    if ev.output_error > tolerance:
        shown.add("error")
    if ev.gradient_error > tolerance:
        shown.add("gradient_error")
    return shown


def stable_problems(ev: Evaluation) -> list[str]:
    """Why a stable twin's evaluation is not acceptable (empty when it is)."""
    tolerance = TOLERANCES[ev.mode]
    problems = []
    if not ev.output_finite:
        problems.append("non-finite output")
    if not ev.gradients_finite:
        problems.append("non-finite gradient")
    if ev.output_error > tolerance:
        problems.append(f"output error {ev.output_error:.3g} > {tolerance:g}")
    if ev.gradient_error > tolerance:
        problems.append(f"gradient error {ev.gradient_error:.3g} > {tolerance:g}")
    return problems
