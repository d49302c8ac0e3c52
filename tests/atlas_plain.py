"""Plain-torch evaluation of a suite target in a precision mode, for ``test_atlas_proofs.py``.

Nothing here uses the harness's evaluation: these helpers restate its definitions, so that an
expectation of the atlas is shown with torch alone.

- A *mode* rounds every floating input (and a Python float) to its storage dtype (fp32 and
  amp-*: float32, fp16: float16, bf16: bfloat16) and a module's parameters and buffers with it,
  runs forward under ``torch.autocast("cpu", ...)`` for amp-*, and backward against the cotangent
  1 for a scalar output, or the harness's fixed sign-mixed cotangent (entries ±0.5 … ±0.9375,
  seeded by the output's name and shape).
- The *reference* is the same function in float64 on exactly the same rounded values (the
  suites widen with ``up()``, which keeps float64 in float64).
- A NaN/Inf output or gradient is a *fail* when the float64 value there is NaN/Inf too or within
  the dtype's range, and a *limit* when every float64 value at the bad places is finite but
  beyond the largest finite value of the dtype.
- The *normwise error* is ``max|out - ref| / max(max|ref|, 1)`` over the elements where both are
  finite; outputs are held to 1e-4 (fp32), 1e-2 (fp16, amp-fp16), 5e-2 (bf16, amp-bf16),
  gradients to 1e-3 in fp32 and the output tolerance elsewhere.
"""

from __future__ import annotations

import contextlib
import copy
import math
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

MODES: dict[str, tuple[torch.dtype, torch.dtype | None]] = {
    "fp32": (torch.float32, None),
    "fp16": (torch.float16, None),
    "bf16": (torch.bfloat16, None),
    "amp-fp16": (torch.float32, torch.float16),
    "amp-bf16": (torch.float32, torch.bfloat16),
}
OUTPUT_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2, "amp-fp16": 1e-2, "amp-bf16": 5e-2}
GRADIENT_TOLERANCE = {**OUTPUT_TOLERANCE, "fp32": 1e-3}

_COTANGENT_VALUES = torch.cat([-torch.arange(8, 16) / 16, torch.arange(8, 16) / 16]).double()


def compute_dtype(mode: str) -> torch.dtype:
    storage, autocast = MODES[mode]
    return autocast or storage


def cotangent(out: torch.Tensor) -> torch.Tensor:
    if out.numel() == 1:
        return torch.ones_like(out)
    g = torch.Generator().manual_seed(zlib.crc32(f"out{tuple(out.shape)}".encode()))
    idx = torch.randint(len(_COTANGENT_VALUES), out.shape, generator=g)
    return _COTANGENT_VALUES[idx].to(out.dtype)


def round_to(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to(dtype) if value.is_floating_point() else value.clone()
    if isinstance(value, float):
        return float(torch.tensor(value, dtype=dtype))
    return value


@contextlib.contextmanager
def _autocast(dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        with torch.autocast("cpu", dtype=dtype):
            yield


def _call(
    fn: Callable[..., Any],
    values: Mapping[str, Any],
    dtype: torch.dtype,
    autocast: torch.dtype | None,
    wrt: tuple[str, ...] | None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    args: dict[str, Any] = {}
    leaves: dict[str, torch.Tensor] = {}
    for name, v in values.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point() and (wrt is None or name in wrt):
            v = v.detach().clone().requires_grad_(True)
            leaves[name] = v
        args[name] = v
    if isinstance(fn, torch.nn.Module):
        fn = copy.deepcopy(fn).to(dtype)
        if wrt is None:
            for name, p in fn.named_parameters():
                leaves[name] = p
    with _autocast(autocast):
        out = fn(**args)
    assert isinstance(out, torch.Tensor) and out.is_floating_point(), out
    grads: dict[str, torch.Tensor] = {}
    if leaves and out.requires_grad:
        gs = torch.autograd.grad(out, list(leaves.values()), cotangent(out), allow_unused=True)
        grads = {k: g.detach() for k, g in zip(leaves, gs, strict=True) if g is not None}
    return out.detach(), grads


@dataclass
class Evaluation:
    """One target on one input in one mode, beside its float64 reference."""

    mode: str
    output: torch.Tensor
    grads: dict[str, torch.Tensor]
    ref_output: torch.Tensor
    ref_grads: dict[str, torch.Tensor]

    def summary(self) -> str:
        return (
            f"{self.mode}: output {self.output.flatten()[:4].tolist()} vs float64 "
            f"{self.ref_output.flatten()[:4].tolist()}; output error {output_error(self):.3g}, "
            f"gradient error {gradient_error(self):.3g}; non-finite gradients "
            f"{sorted(k for k, g in self.grads.items() if not bool(torch.isfinite(g).all()))}"
        )


def evaluate(
    fn: Callable[..., Any], values: Mapping[str, Any], mode: str, wrt: tuple[str, ...] | None = None
) -> Evaluation:
    """Run ``fn`` in ``mode`` and in float64 on the same rounded inputs."""
    storage, autocast = MODES[mode]
    rounded = {k: round_to(v, storage) for k, v in values.items()}
    out, grads = _call(fn, rounded, storage, autocast, wrt)
    ref_values = {k: round_to(v, torch.float64) for k, v in rounded.items()}
    ref_out, ref_grads = _call(fn, ref_values, torch.float64, None, wrt)
    return Evaluation(mode, out, grads, ref_out, ref_grads)


def nonfinite(value: torch.Tensor, ref: torch.Tensor, mode: str) -> str | None:
    """``"fail"``, ``"limit"`` or ``None``: how a NaN/Inf in ``value`` counts (see the module doc)."""
    bad = ~torch.isfinite(value)
    if not bool(bad.any()):
        return None
    dtype = value.dtype if value.dtype != torch.float64 else compute_dtype(mode)
    r = ref.double()[bad]
    if not bool(torch.isfinite(r).all()):
        return "fail"
    return "limit" if bool((r.abs() > torch.finfo(dtype).max).all()) else "fail"


def normwise_error(value: torch.Tensor, ref: torch.Tensor) -> float:
    o, r = value.double(), ref.double()
    if o.shape != r.shape:
        return math.inf
    both = torch.isfinite(o) & torch.isfinite(r)
    if not bool(both.any()):
        return 0.0
    return float((o[both] - r[both]).abs().max()) / max(float(r[both].abs().max()), 1.0)


def output_error(ev: Evaluation) -> float:
    return normwise_error(ev.output, ev.ref_output)


def gradient_error(ev: Evaluation) -> float:
    return max((normwise_error(g, ev.ref_grads[k]) for k, g in ev.grads.items()), default=0.0)


def shown(ev: Evaluation) -> dict[str, str]:
    """Each check the evaluation fails, with its outcome (``fail`` or ``limit``)."""
    found: dict[str, str] = {}
    out = nonfinite(ev.output, ev.ref_output, ev.mode)
    if out:
        found["finite_forward"] = out
    kinds = {nonfinite(g, ev.ref_grads[k], ev.mode) for k, g in ev.grads.items()} - {None}
    if kinds:
        found["finite_gradients"] = "fail" if "fail" in kinds else "limit"
    beyond = lambda ref, dt: float(ref.double().abs().max()) > torch.finfo(dt).max  # noqa: E731
    if output_error(ev) > OUTPUT_TOLERANCE[ev.mode]:
        dt = ev.output.dtype if ev.output.dtype != torch.float64 else compute_dtype(ev.mode)
        found["error"] = "limit" if beyond(ev.ref_output, dt) else "fail"
    if gradient_error(ev) > GRADIENT_TOLERANCE[ev.mode]:
        found["gradient_error"] = "fail"
    return found
