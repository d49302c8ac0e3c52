"""Plain-torch evaluation of a function in a precision mode beside its float64 reference.

Nothing here uses the harness: these helpers restate its definitions with torch alone, so that
the corpus (``corpus/plain.py``) and the atlas's proofs (``atlas_plain.py``) are shown
independently of it. Each of those adds its own judgement on top.

- A *mode* rounds every floating input (and a Python float) to its storage dtype (fp32 and
  amp-*: float32, fp16: float16, bf16: bfloat16) and a module's parameters with it, runs forward
  under ``torch.autocast("cpu", ...)`` for amp-*, and backward against the cotangent 1 for a
  scalar output, or the harness's fixed sign-mixed cotangent (entries ±0.5 … ±0.9375, seeded by
  the output's name and shape).
- The *reference* is the same function in float64 on exactly the same rounded values.
- The *normwise error* is ``max|out - ref| / max(max|ref|, 1)`` over the elements where both are
  finite.
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

__all__ = [
    "MODES",
    "Evaluation",
    "compute_dtype",
    "evaluate",
    "normwise_error",
    "round_to",
]

# mode: (storage dtype of the inputs, autocast dtype or None)
MODES: dict[str, tuple[torch.dtype, torch.dtype | None]] = {
    "fp32": (torch.float32, None),
    "fp16": (torch.float16, None),
    "bf16": (torch.bfloat16, None),
    "amp-fp16": (torch.float32, torch.float16),
    "amp-bf16": (torch.float32, torch.bfloat16),
}

_COTANGENT_VALUES = torch.cat([-torch.arange(8, 16) / 16, torch.arange(8, 16) / 16]).double()


def compute_dtype(mode: str) -> torch.dtype:
    """The narrowest dtype the mode computes in."""
    storage, autocast = MODES[mode]
    return autocast or storage


def cotangent(out: torch.Tensor) -> torch.Tensor:
    if out.numel() == 1:
        return torch.ones_like(out)
    g = torch.Generator().manual_seed(zlib.crc32(f"out{tuple(out.shape)}".encode()))
    idx = torch.randint(len(_COTANGENT_VALUES), out.shape, generator=g)
    return _COTANGENT_VALUES[idx].to(out.dtype)


def round_to(value: Any, dtype: torch.dtype) -> Any:
    """A floating tensor in ``dtype``, a Python float through it; the rest unchanged."""
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
        leaves.update((n, p) for n, p in fn.named_parameters() if wrt is None or n in wrt)
    with _autocast(autocast):
        out = fn(**args)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise TypeError(f"{getattr(fn, '__name__', fn)} must return a floating tensor")
    grads: dict[str, torch.Tensor] = {}
    if leaves and out.requires_grad:
        gs = torch.autograd.grad(out, list(leaves.values()), cotangent(out), allow_unused=True)
        grads = {k: g.detach() for k, g in zip(leaves, gs, strict=True) if g is not None}
    return out.detach(), grads


def normwise_error(value: torch.Tensor, ref: torch.Tensor) -> float:
    """``max|value - ref| / max(max|ref|, 1)`` over the elements where both are finite."""
    o, r = value.detach().double(), ref.detach().double()
    if o.shape != r.shape:
        return math.inf
    both = torch.isfinite(o) & torch.isfinite(r)
    if not bool(both.any()):
        return 0.0
    return float((o[both] - r[both]).abs().max()) / max(float(r[both].abs().max()), 1.0)


@dataclass
class Evaluation:
    """One function on one input in one mode, beside its float64 reference."""

    mode: str
    output: torch.Tensor
    grads: dict[str, torch.Tensor]
    ref_output: torch.Tensor
    ref_grads: dict[str, torch.Tensor]

    @property
    def output_error(self) -> float:
        return normwise_error(self.output, self.ref_output)

    @property
    def gradient_error(self) -> float:
        """The largest gradient error; ``inf`` when a gradient exists in one run only."""
        if set(self.ref_grads) ^ set(self.grads):
            return math.inf
        return max(
            (normwise_error(g, self.ref_grads[k]) for k, g in self.grads.items()), default=0.0
        )

    @property
    def output_finite(self) -> bool:
        return bool(torch.isfinite(self.output).all())

    @property
    def gradients_finite(self) -> bool:
        return all(bool(torch.isfinite(g).all()) for g in self.grads.values())

    def summary(self) -> str:
        return (
            f"{self.mode}: output {self.output.flatten()[:6].tolist()} vs float64 "
            f"{self.ref_output.flatten()[:6].tolist()}; output error {self.output_error:.3g}, "
            f"gradient error {self.gradient_error:.3g}; non-finite gradients "
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
