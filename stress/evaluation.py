"""Evaluating a function target on one example: in the mode, in float64, and checked.

Each example is materialized, rounded to the mode, evaluated in the mode (forward and backward,
under autocast for amp modes) and in float64 on the same rounded values; the float64 reference
is evaluated again on inputs moved by one eps to measure how sensitive the function is there.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis.strategies import SearchStrategy

from .checks import Check, Evaluation, Violation, measure, normwise_error
from .modes import Mode
from .strategies import Example, examples
from .targets import Target

__all__ = ["FunctionSession", "round_to_mode"]


def round_to_mode(value: Any, mode: Mode) -> Any:
    """Round a materialized value to the mode: what the target and the reference both see."""
    if isinstance(value, torch.Tensor):
        return value.to(mode.storage_dtype) if value.is_floating_point() else value
    if isinstance(value, float):
        return float(torch.tensor(value, dtype=mode.storage_dtype))
    return value


def _flatten(out: Any, key: str = "out") -> dict[str, torch.Tensor]:
    """Outputs as a flat dict of floating tensors: ``out``, ``out[0]``, ``out['loss']``."""
    if isinstance(out, torch.Tensor):
        return {key: out} if out.is_floating_point() else {}
    if isinstance(out, (tuple, list)):
        flat: dict[str, torch.Tensor] = {}
        for i, o in enumerate(out):
            flat.update(_flatten(o, f"{key}[{i}]"))
        return flat
    if isinstance(out, Mapping):
        flat = {}
        for k, o in out.items():
            flat.update(_flatten(o, f"{key}[{k!r}]"))
        return flat
    return {}


@dataclass
class _Executor:
    """Runs one target in one mode and in float64 on the same rounded inputs."""

    target: Target
    mode: Mode
    module: torch.nn.Module | None = field(init=False)

    def __post_init__(self) -> None:
        m = self.target.module
        self.module = (
            copy.deepcopy(m).to(self.mode.device, self.mode.storage_dtype)
            if m is not None
            else None
        )

    def evaluate(self, values: dict[str, Any]) -> Evaluation:
        module = copy.deepcopy(self.module) if self.module is not None else None
        ref_base = copy.deepcopy(module).to("cpu", torch.float64) if module is not None else None
        ref_module = copy.deepcopy(ref_base)  # running may update buffers: each run gets a copy
        outputs, grads = self._call(module, values, self.mode.device, reference=False)
        ev = Evaluation(self.mode, outputs, grads, None, None)
        ref_values = {
            k: v.to("cpu", torch.float64) if _is_float_tensor(v) else v for k, v in values.items()
        }
        try:
            ev.ref_outputs, ev.ref_grads = self._call(ref_module, ref_values, "cpu", reference=True)
        except Exception:  # noqa: BLE001 - a reference that cannot run disables only the error checks
            return ev
        eps = self.mode.facts.eps
        sensitivity: dict[str, float] = {}
        for alternate in (False, True):
            try:
                p_outputs, p_grads = self._perturbed(ref_base, ref_values, eps, alternate)
            except Exception:  # noqa: BLE001 - singular next to this input: no conditioning allowance
                return ev
            floor = self.target.error_floor
            for got, ref in ((p_outputs, ev.ref_outputs), (p_grads, ev.ref_grads or {})):
                for k, r in ref.items():
                    if k in got:
                        change = normwise_error(got[k], r, floor)[0]
                        sensitivity[k] = max(sensitivity.get(k, 0.0), change)
        ev.sensitivity = sensitivity
        return ev

    def _perturbed(
        self,
        ref_module: torch.nn.Module | None,
        ref_values: dict[str, Any],
        eps: float,
        alternate: bool,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The float64 reference on inputs (and parameters) moved by one relative eps."""
        module = copy.deepcopy(ref_module)
        if module is not None:
            with torch.no_grad():
                for p in module.parameters():
                    p.copy_(_perturb(p, eps, alternate))
        values = {k: _perturb(v, eps, alternate) for k, v in ref_values.items()}
        return self._call(module, values, "cpu", reference=True)

    def _call(
        self,
        module: torch.nn.Module | None,
        values: dict[str, Any],
        device: str,
        *,
        reference: bool,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        wrt = self.target.wrt
        args: dict[str, Any] = {}
        leaves: dict[str, torch.Tensor] = {}
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                v = v.to(device)
                if v.is_floating_point() and (wrt is None or k in wrt):
                    v = v.detach().requires_grad_(True)
                    leaves[f"grad[{k!r}]"] = v
            args[k] = v
        if module is not None and wrt is None:
            leaves.update(
                {f"grad[{n!r}]": p for n, p in module.named_parameters() if p.requires_grad}
            )
        fn = module if module is not None else self.target.fn
        if reference:
            out = fn(**args)
        else:
            with self.mode.autocast():
                out = fn(**args)
        outputs = _flatten(out)
        diff = [o for o in outputs.values() if o.requires_grad]
        grads: dict[str, torch.Tensor] = {}
        if diff and leaves:
            gs = torch.autograd.grad(
                diff,
                list(leaves.values()),
                grad_outputs=[_cotangent(o) for o in diff],
                allow_unused=True,
            )
            grads = {k: g for k, g in zip(leaves, gs, strict=True) if g is not None}
        return {k: o.detach() for k, o in outputs.items()}, grads


# ±0.5 … ±0.9375 in steps of 1/16: exact in every float dtype, and ties between neighbours rare
_COTANGENT_VALUES = torch.cat([-torch.arange(8, 16) / 16, torch.arange(8, 16) / 16])


def _cotangent(out: torch.Tensor) -> torch.Tensor:
    """The vector a gradient is taken against: 1 for a scalar loss, else fixed ±[0.5, 1) entries.

    Sign-mixed entries, exact in every dtype, keep invariances such as ``sum(layer_norm(x)) ==
    const`` from making the gradient identically zero (which would turn noise into error).
    """
    if out.numel() == 1:
        return torch.ones_like(out)
    g = torch.Generator().manual_seed(out.numel())
    idx = torch.randint(len(_COTANGENT_VALUES), out.shape, generator=g)
    return _COTANGENT_VALUES[idx].to(out.device, out.dtype)


def _perturb(v: Any, eps: float, alternate: bool) -> Any:
    """Move every float by a relative ``±eps``: one ulp-sized input change.

    The signs are fixed and random; with ``alternate`` they are also flipped on every other
    element, so that of the two probes one moves neighbouring elements apart, whatever the draw.
    """
    if _is_float_tensor(v):
        g = torch.Generator().manual_seed(v.numel())
        signs = torch.randint(2, v.shape, generator=g).to(v.dtype).mul_(2).sub_(1)
        if alternate:
            signs.view(-1)[1::2] *= -1
        return v * (1 + eps * signs)
    if isinstance(v, float):
        return v * (1 - eps if alternate else 1 + eps)
    return v


def _is_float_tensor(v: Any) -> bool:
    return isinstance(v, torch.Tensor) and v.is_floating_point()


class FunctionSession:
    """One function target in one mode: the example strategy and how one example is checked."""

    def __init__(self, target: Target, mode: Mode) -> None:
        self.target, self.mode = target, mode
        self.executor = _Executor(target, mode)
        self.checks: list[Check] = target.checks()
        self.check_names = [c.name for c in self.checks]
        self.strategy: SearchStrategy[Example] = examples(target.arguments, mode, target.dims)
        self.inputs: dict[str, Any] = {}

    def run(self, example: Example) -> tuple[dict[str, float], Violation | None]:
        """Figures of the example and the first violated check; the user's exceptions propagate."""
        mode = self.mode
        return self.check_values(
            {k: round_to_mode(r.materialize(mode), mode) for k, r in example.recipes.items()}
        )

    def check_values(self, values: dict[str, Any]) -> tuple[dict[str, float], Violation | None]:
        """Evaluate and check given (already rounded) values: what replaying a finding does."""
        self.inputs = {
            k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in values.items()
        }
        ev = self.executor.evaluate(values)
        figures = measure(ev, self.target.error_floor)
        for check in self.checks:
            violation = check(ev)
            if violation is not None:
                return figures, violation
        return figures, None

    @staticmethod
    def describe(example: Example) -> dict[str, str]:
        return {k: repr(r) for k, r in example.recipes.items()}
