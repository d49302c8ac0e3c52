"""Evaluating a function target on one example: in the mode, in float64, and checked.

Each example is materialized, rounded to the mode, evaluated in the mode (forward and backward,
under autocast for amp modes) and in float64 on the same rounded values under
:class:`~stress.engine.reference.Float64Reference`. Only when an error exceeds its tolerance is
the float64 reference evaluated again on inputs moved by a fraction of one eps in two opposite
directions, to tell a discontinuity or an input below the dtype's resolution (a limit) from a
formula that could do better (a failure). Modules are called through
``torch.func.functional_call``: their parameters are cast once per mode, never copied per example.
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
from hypothesis.strategies import SearchStrategy
from torch.func import functional_call

from ..core.checks import Evaluation, Violation, checks_for, conditioning_note, measure
from ..core.modes import Mode
from ..core.recipes import Example
from ..core.strategies import TensorStrategy, examples
from .reference import Float64Reference
from .references import resolve_reference
from .session import Observation, UserError
from .targets import Target

__all__ = ["FunctionSession", "round_to_mode"]

# bytes per element of an example's tensors across every copy the evaluation holds:
# float64 value, rounded value, mode leaf and gradient, float64 leaf and gradient
BYTES_PER_ELEMENT = 8 * 6


def round_to_mode(value: Any, mode: Mode) -> Any:
    """Round a materialized value to the mode: what the target and the reference both see."""
    if isinstance(value, torch.Tensor):
        return value.to(mode.storage_dtype) if value.is_floating_point() else value
    if isinstance(value, float):
        return float(torch.tensor(value, dtype=mode.storage_dtype))
    return value


def flatten_outputs(out: Any, key: str = "out") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Floating outputs as a flat dict (``out``, ``out[0]``, ``out['loss']``), Python floats as
    0-d float64 tensors; and a description of everything else that was returned."""
    if isinstance(out, torch.Tensor):
        if out.is_floating_point() or out.is_complex():
            return {key: out}, []
        return {}, [f"{key}: a {str(out.dtype).removeprefix('torch.')} tensor"]
    if isinstance(out, float):
        return {key: torch.tensor(out, dtype=torch.float64)}, []
    if isinstance(out, (tuple, list, Mapping)):
        items = out.items() if isinstance(out, Mapping) else enumerate(out)
        flat: dict[str, torch.Tensor] = {}
        other: list[str] = []
        for k, o in items:
            f, rest = flatten_outputs(o, f"{key}[{k!r}]")
            flat.update(f)
            other += rest
        return flat, other or ([f"{key}: an empty {type(out).__name__}"] if not flat else [])
    return {}, [
        f"{key}: {out!r}"
        if out is None or isinstance(out, (bool, int))
        else f"{key}: a {type(out).__name__}"
    ]


# ±0.5 … ±0.9375 in steps of 1/16: exact in every float dtype, and ties between neighbours rare
_COTANGENT_VALUES = torch.cat([-torch.arange(8, 16) / 16, torch.arange(8, 16) / 16]).double()


def cotangent(key: str, out: torch.Tensor) -> torch.Tensor:
    """The vector a gradient is taken against: 1 for a scalar, else fixed ±[0.5, 1) entries.

    Sign-mixed entries keep invariances such as ``sum(layer_norm(x)) == const`` from making the
    gradient identically zero; they are seeded by the output's name and shape, the same in the
    mode and in float64.
    """
    if out.numel() == 1:
        return torch.ones_like(out)
    return _cotangent(key, tuple(out.shape)).to(out.device, out.dtype, copy=True)


@functools.lru_cache(maxsize=256)
def _cotangent(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(f"{key}{shape}".encode()))
    return _COTANGENT_VALUES[torch.randint(len(_COTANGENT_VALUES), shape, generator=g)]


class FunctionSession:
    """One function target in one mode: the example strategy and how one example is checked."""

    def __init__(self, target: Target, mode: Mode) -> None:
        self.target, self.mode = target, mode
        self.options = target.options
        self.checks = checks_for(target.options)
        self.check_names = target.options.check_names
        self.strategy: SearchStrategy[Example] = examples(
            target.arguments, mode, target.options.dims
        )
        self.domains = {
            k: (a.min_value, a.max_value)
            for k, a in target.arguments.items()
            if isinstance(a, TensorStrategy)
        }
        self.given: Callable[..., Any] | None = None
        self.given_name = ""
        if target.options.reference is not None:
            self.given, name = resolve_reference(
                target.options.reference, target.name, list(target.arguments)
            )
            dtype = target.options.reference_dtype or torch.float64
            self.given_dtype: torch.dtype = dtype
            self.given_name = f"the reference {name} ({str(dtype).removeprefix('torch.')})"
        module = target.module
        self.module = module
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        if module is not None:
            with torch.no_grad():
                self.params = {
                    n: p.detach().to(mode.device, mode.storage_dtype)
                    for n, p in module.named_parameters()
                }
                self.buffers = {
                    n: b.detach().to(
                        mode.device, mode.storage_dtype if b.is_floating_point() else b.dtype
                    )
                    for n, b in module.named_buffers()
                }

    # ------------------------------------------------------------------ the interface

    def describe(self, example: Example) -> dict[str, str]:
        return example.describe()

    def memory(self, example: Example) -> int:
        return example.numel() * BYTES_PER_ELEMENT

    def run(self, example: Example, *, explain: bool = False) -> Observation:
        mode = self.mode
        values = {k: round_to_mode(v, mode) for k, v in example.materialize(mode).items()}
        return self.check_values(values, explain=explain)

    def check_values(self, values: dict[str, Any], *, explain: bool = False) -> Observation:
        """Evaluate and check given (already rounded) values: what replaying a finding does."""
        inputs = {
            k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in values.items()
        }
        ev = self.evaluate(values)
        violations: list[Violation] = []
        for check in self.checks:
            if (
                violations
                and check.name in _AFTER_FORWARD
                and any(x.check == "finite_forward" for x in violations)
            ):
                continue  # gradients of a non-finite output say nothing new
            violations += check(ev)
        if explain:
            floor = self.options.error_floor
            violations = [
                Violation(
                    x.check,
                    x.message + conditioning_note(ev, x, floor),
                    x.key,
                    x.outcome,
                    x.figures,
                )
                for x in violations
            ]
        return Observation(
            measure(ev, self.options.error_floor), violations, inputs, ev.reference_note
        )

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, values: dict[str, Any]) -> Evaluation:
        mode = self.mode
        outputs, grads, other = self._call(values, self.params, mode.device, reference=False)
        ev = Evaluation(mode, outputs, grads)
        if not outputs:
            ev.no_float_output = "; ".join(other) or "nothing"
            return ev
        ref_values = {k: _to_float64(x) for k, x in values.items()}
        ref_params = {n: _to_float64(p) for n, p in self.params.items()}
        reference = self._reference(ref_values, ref_params)
        given = self._given(values) if self.given is not None else None
        if isinstance(given, tuple):
            ev.given_outputs, ev.given_grads = given
            ev.given_name = self.given_name
        if isinstance(reference, str):
            if given is None:
                ev.reference_note = reference
            elif isinstance(given, str):
                ev.reference_note = f"{reference}; {given}"
            return ev
        ev.ref_outputs, ev.ref_grads = reference
        if isinstance(given, str):
            ev.reference_note = given
        ev.inputs = ref_values
        ev.probe = self._prober(ref_values, ref_params)
        return ev

    def _given(
        self, values: dict[str, Any]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | str:
        """The trusted reference on the same rounded inputs, in its dtype (float64 by default)."""
        assert self.given is not None
        dtype = self.given_dtype
        cast = {
            k: x.detach().to("cpu", dtype)
            if isinstance(x, torch.Tensor) and x.is_floating_point()
            else x
            for k, x in values.items()
        }
        guard = Float64Reference() if dtype == torch.float64 else contextlib.nullcontext()
        try:
            with guard:
                outputs, grads, _ = self._call(cast, {}, "cpu", reference=True, fn=self.given)
        except UserError as e:
            return f"{self.given_name} raised {e}"
        if isinstance(guard, Float64Reference) and guard.degraded:
            return f"{self.given_name} degraded: {guard.degraded}"
        return outputs, grads

    def _reference(
        self, values: dict[str, Any], params: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | str:
        """The float64 reference, or why there is none to trust."""
        guard = Float64Reference()
        try:
            with guard:
                outputs, grads, _ = self._call(values, params, "cpu", reference=True)
        except UserError as e:
            return f"no float64 reference: the target raised {e} in float64"
        if guard.degraded:
            return f"reference degraded: {guard.degraded} inside the float64 reference"
        return outputs, grads

    def _prober(
        self, values: dict[str, Any], params: dict[str, torch.Tensor]
    ) -> Callable[[float, int], tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None]:
        facts = self.mode.facts

        def probe(
            scale: float, sign: int
        ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None:
            moved = {
                k: _perturb(x, k, scale * facts.eps, scale * facts.tiny, sign, self.domains.get(k))
                for k, x in values.items()
            }
            moved_params = {
                n: _perturb(p, n, scale * facts.eps, scale * facts.tiny, sign, None)
                for n, p in params.items()
            }
            reference = self._reference(moved, moved_params)
            return None if isinstance(reference, str) else reference

        return probe

    def _call(
        self,
        values: dict[str, Any],
        params: dict[str, torch.Tensor],
        device: str,
        *,
        reference: bool,
        fn: Callable[..., Any] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
        """Forward and backward of the target (or of ``fn``, a given reference); their own
        exceptions come out as ``UserError``."""
        wrt = self.options.wrt
        args: dict[str, Any] = {}
        leaves: dict[str, torch.Tensor] = {}
        for k, x in values.items():
            if isinstance(x, torch.Tensor):
                x = x.to(device)
                if x.is_floating_point() and (wrt is None or k in wrt):
                    x = x.detach().requires_grad_(True)
                    leaves[f"grad[{k!r}]"] = x
            args[k] = x
        call_params = {n: p.to(device).detach() for n, p in params.items()}
        for n, p in call_params.items():
            if p.is_floating_point() and (wrt is None or n in wrt):
                p.requires_grad_(True)
                leaves[f"grad[{n!r}]"] = p
        try:
            if fn is not None:
                call: Callable[[], Any] = lambda: fn(**args)  # noqa: E731
            elif self.module is not None:
                module = self.module
                state = {
                    **call_params,
                    **{n: b.to(device, _like(b, params)).clone() for n, b in self.buffers.items()},
                }
                call = lambda: functional_call(module, state, args=(), kwargs=args)  # noqa: E731
            else:
                call = lambda: self.target.fn(**args)  # noqa: E731
            if reference:
                out = call()
            else:
                with self.mode.autocast():
                    out = call()
            outputs, other = flatten_outputs(out)
            diff = {k: o for k, o in outputs.items() if o.requires_grad}
            grads: dict[str, torch.Tensor] = {}
            if diff and leaves:
                gs = torch.autograd.grad(
                    list(diff.values()),
                    list(leaves.values()),
                    grad_outputs=[cotangent(k, o) for k, o in diff.items()],
                    allow_unused=True,
                )
                grads = {k: g for k, g in zip(leaves, gs, strict=True) if g is not None}
        except Exception as e:
            raise UserError(e) from e
        return {k: o.detach() for k, o in outputs.items()}, grads, other


_AFTER_FORWARD = frozenset({"finite_gradients", "gradient_bound", "gradient_error"})


def _like(buffer: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.dtype:
    """Float buffers follow the parameters' dtype (float64 in the reference)."""
    if not buffer.is_floating_point() or not params:
        return buffer.dtype
    return next(iter(params.values())).dtype


def _to_float64(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.detach().to("cpu", torch.float64)
    return x


def _perturb(
    x: Any,
    name: str,
    rel: float,
    absolute: float,
    sign: int,
    domain: tuple[float | None, float | None] | None,
) -> Any:
    """Move every float by ``rel·(|x| + max|x|) + absolute`` with fixed random signs per argument.

    The normwise part moves exact zeros, the absolute part moves values below the dtype's
    resolution; the signs differ between arguments (seeded by the name) and ``sign`` flips them
    all, so one of the two opposite probes crosses a kink the inputs sit on. The result stays
    inside the argument's declared domain.
    """
    if isinstance(x, float):
        return x + sign * (rel * abs(x) + absolute)
    if not (isinstance(x, torch.Tensor) and x.is_floating_point()) or not x.numel():
        return x
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    signs = torch.randint(2, x.shape, generator=g).to(x.dtype).mul_(2).sub_(1) * sign
    moved = x + signs * (rel * (x.abs() + x.abs().max()) + absolute)
    if domain is not None and (domain[0] is not None or domain[1] is not None):
        moved = moved.clamp(domain[0], domain[1])
    return moved
