"""Plain-torch evaluation of a corpus pair: the mode's run, the float64 reference, the errors.

Nothing here uses the ``stress`` harness: these helpers restate its definitions so that the
corpus can be checked independently of it.

- A *mode* rounds every floating input to its storage dtype (fp32 and amp-*: float32, fp16:
  float16, bf16: bfloat16), runs forward (under ``torch.autocast("cpu", ...)`` for amp-*) and
  backward, against the cotangent 1 for a scalar output and a fixed sign-mixed cotangent
  (entries in ±[0.5, 0.9375], seeded by the number of elements) otherwise.
- The *reference* is the same function in float64 on exactly the same rounded values.
- The *normwise error* is ``max|out - ref| / max(max|ref|, 1)`` over the elements where both
  are finite; the tolerances below apply to outputs and to gradients alike.
- A non-finite value *counts* as a failure unless the float64 value there is finite but beyond
  the largest finite value of the mode's compute dtype (a representability limit).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "FAILURE_KINDS",
    "MODES",
    "TOLERANCES",
    "Evaluation",
    "evaluate",
    "failures",
    "normwise_error",
    "round_inputs",
    "stable_problems",
]

# mode: (storage dtype of the inputs, autocast dtype or None)
MODES: dict[str, tuple[torch.dtype, torch.dtype | None]] = {
    "fp32": (torch.float32, None),
    "fp16": (torch.float16, None),
    "bf16": (torch.bfloat16, None),
    "amp-fp16": (torch.float32, torch.float16),
    "amp-bf16": (torch.float32, torch.bfloat16),
}

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

_COTANGENT_VALUES = torch.cat([-torch.arange(8, 16) / 16, torch.arange(8, 16) / 16])


def compute_dtype(mode: str) -> torch.dtype:
    """The narrowest dtype the mode computes in."""
    storage, autocast = MODES[mode]
    return autocast or storage


def round_inputs(values: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """Floating tensors to the storage dtype, Python floats through it; the rest unchanged."""
    storage, _ = MODES[mode]
    rounded: dict[str, Any] = {}
    for name, v in values.items():
        if isinstance(v, torch.Tensor):
            rounded[name] = v.detach().to(storage) if v.is_floating_point() else v.clone()
        elif isinstance(v, float):
            rounded[name] = float(torch.tensor(v, dtype=storage))
        else:
            rounded[name] = v
    return rounded


def cotangent(out: torch.Tensor) -> torch.Tensor:
    """1 for a scalar; otherwise fixed ±[0.5, 0.9375] entries seeded by the element count."""
    if out.numel() == 1:
        return torch.ones_like(out)
    g = torch.Generator().manual_seed(out.numel())
    idx = torch.randint(len(_COTANGENT_VALUES), out.shape, generator=g)
    return _COTANGENT_VALUES[idx].to(out.dtype)


@contextlib.contextmanager
def _maybe_autocast(dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        with torch.autocast("cpu", dtype=dtype):
            yield


def _run(
    fn: Callable[..., torch.Tensor],
    values: Mapping[str, Any],
    wrt: tuple[str, ...] | None,
    autocast: torch.dtype | None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    args: dict[str, Any] = {}
    leaves: dict[str, torch.Tensor] = {}
    for name, v in values.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point() and (wrt is None or name in wrt):
            v = v.detach().clone().requires_grad_(True)
            leaves[name] = v
        args[name] = v
    with _maybe_autocast(autocast):
        out = fn(**args)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise TypeError(f"{getattr(fn, '__name__', fn)} must return a floating tensor")
    grads: dict[str, torch.Tensor] = {}
    if leaves and out.requires_grad:
        gs = torch.autograd.grad(
            out, list(leaves.values()), grad_outputs=cotangent(out), allow_unused=True
        )
        grads = {k: g.detach() for k, g in zip(leaves, gs, strict=True) if g is not None}
    return out.detach(), grads


def normwise_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``max|out - ref| / max(max|ref|, 1)`` over the elements where both are finite."""
    o, r = out.detach().double(), ref.detach().double()
    if o.shape != r.shape:
        return math.inf
    both = torch.isfinite(o) & torch.isfinite(r)
    if not bool(both.any()):
        return 0.0
    scale = max(float(r[both].abs().max()), 1.0)
    return float((o[both] - r[both]).abs().max()) / scale


def counted_nonfinite(out: torch.Tensor, ref: torch.Tensor, limit: float) -> bool:
    """A NaN/Inf in ``out`` where the float64 value is non-finite too or fits the dtype."""
    o, r = out.detach().double(), ref.detach().double()
    bad = ~torch.isfinite(o)
    if o.shape != r.shape:
        return bool(bad.any())
    representable = ~torch.isfinite(r) | (r.abs() <= limit)
    return bool((bad & representable).any())


@dataclass
class Evaluation:
    """One function on one input in one mode, beside its float64 reference."""

    mode: str
    output: torch.Tensor
    grads: dict[str, torch.Tensor]
    ref_output: torch.Tensor
    ref_grads: dict[str, torch.Tensor]
    tolerance: float = field(init=False)

    def __post_init__(self) -> None:
        self.tolerance = TOLERANCES[self.mode]

    @property
    def limit(self) -> float:
        return float(torch.finfo(compute_dtype(self.mode)).max)

    @property
    def output_error(self) -> float:
        return normwise_error(self.output, self.ref_output)

    @property
    def gradient_error(self) -> float:
        errs = [normwise_error(g, self.ref_grads[k]) for k, g in self.grads.items()]
        missing = set(self.ref_grads) ^ set(self.grads)
        return math.inf if missing else max(errs, default=0.0)

    @property
    def output_finite(self) -> bool:
        return bool(torch.isfinite(self.output).all())

    @property
    def gradients_finite(self) -> bool:
        return all(bool(torch.isfinite(g).all()) for g in self.grads.values())

    def summary(self) -> str:
        return (
            f"{self.mode}: output={self.output.flatten()[:6].tolist()} "
            f"ref={self.ref_output.flatten()[:6].tolist()} "
            f"out_err={self.output_error:.3g} grad_err={self.gradient_error:.3g} "
            f"grads_finite={self.gradients_finite} (tol {self.tolerance:g})"
        )


def evaluate(
    fn: Callable[..., torch.Tensor],
    values: Mapping[str, Any],
    mode: str,
    wrt: tuple[str, ...] | None = None,
) -> Evaluation:
    """Run ``fn`` in ``mode`` and in float64 on the same rounded inputs."""
    _, autocast = MODES[mode]
    rounded = round_inputs(values, mode)
    out, grads = _run(fn, rounded, wrt, autocast)
    ref_values = {
        k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in rounded.items()
    }
    ref_out, ref_grads = _run(fn, ref_values, wrt, None)
    return Evaluation(mode, out, grads, ref_out, ref_grads)


def failures(ev: Evaluation) -> set[str]:
    """The failure kinds an evaluation shows (see ``FAILURE_KINDS``)."""
    shown: set[str] = set()
    if counted_nonfinite(ev.output, ev.ref_output, ev.limit):
        shown.add("nonfinite_output")
    for name, g in ev.grads.items():
        ref = ev.ref_grads.get(name)
        if ref is None or counted_nonfinite(g, ref, ev.limit):
            shown.add("nonfinite_gradient")
    if ev.output_error > ev.tolerance:
        shown.add("error")
    if ev.gradient_error > ev.tolerance:
        shown.add("gradient_error")
    return shown


def stable_problems(ev: Evaluation) -> list[str]:
    """Why a stable twin's evaluation is not acceptable (empty when it is)."""
    problems = []
    if not ev.output_finite:
        problems.append("non-finite output")
    if not ev.gradients_finite:
        problems.append("non-finite gradient")
    if ev.output_error > ev.tolerance:
        problems.append(f"output error {ev.output_error:.3g} > {ev.tolerance:g}")
    if ev.gradient_error > ev.tolerance:
        problems.append(f"gradient error {ev.gradient_error:.3g} > {ev.tolerance:g}")
    return problems
