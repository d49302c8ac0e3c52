"""Stress-testing training steps under injected faults.

A training step is given as a *step factory*: ``make_step(model, optimizer, mode)`` returns
``step(batch, loss_fn)``, which runs one micro-batch (calling ``loss_fn(model, batch)`` for the
loss) and steps the optimizer whenever its accumulation window closes. The harness builds the
model and optimizer in the mode, runs a clean warm-up, then a Hypothesis-drawn schedule of
faults, and checks after every micro-batch:

==================== ======================================================================
``finite_state``     parameters and every optimizer state tensor stay finite
``skip_is_noop``     a step given a fault that must be skipped (NaN/Inf batch, loss spike,
                     infinite gradient) leaves parameters and optimizer state bit-identical
                     (without accumulation, where a window is one micro-batch)
``clip_bound``       with ``max_grad_norm``: the gradient norm ``optimizer.step()`` sees is at
                     most ``max_grad_norm``
``progress``         the first fully clean window after a fault updates the parameters: the
                     scaler or the guard has not stalled training (the collapse of seed 003)
``accumulation``     with ``accumulation_steps`` k: k clean micro-batches give the update of
                     one plain step on their concatenation, within the mode's tolerance
==================== ======================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as hst
import torch

from .checks import GRADIENT_TOLERANCE_FACTOR, Violation
from .errors import InvalidArgument
from .evaluation import round_to_mode
from .faults import FAULTS, Fault, schedules
from .guard import GuardedStep, total_norm
from .modes import MODE_NAMES, Mode
from .report.model import Report
from .runner import run
from .strategies import Example, TensorRecipe, as_argument_strategy, examples, resolve_dims
from .targets import BaseTarget, _normalize_expect, default_name

__all__ = ["StepTarget", "fuzz_step", "guarded_step", "step_target"]

Batch = dict[str, Any]
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]
Step = Callable[[Batch, LossFn], Any]
StepFactory = Callable[[torch.nn.Module, torch.optim.Optimizer, Mode], Step]
STEP_CHECKS = (
    "exception",
    "finite_state",
    "skip_is_noop",
    "clip_bound",
    "progress",
    "accumulation",
)


@dataclass
class StepTarget(BaseTarget):
    """A training step with its model, optimizer, loss and batch strategies."""

    make_step: StepFactory
    model: Callable[[], torch.nn.Module]
    optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
    loss: LossFn
    batch: dict[str, Any]
    name: str
    named: bool = False
    expect: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    faults: tuple[str, ...] = FAULTS[1:]
    warmup_steps: int = 8
    max_steps: int = 6
    accumulation_steps: int = 1
    max_grad_norm: float | None = None
    dims: dict[str, tuple[int, int]] = field(default_factory=dict)
    source: str | None = None

    def session(self, mode: Mode) -> StepSession:
        return StepSession(self, mode)


def _state_tensors(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Parameters and optimizer state, keyed for messages: ``param['0.weight']``, ``exp_avg['0.weight']``."""
    names: dict[torch.Tensor, str] = {p: n for n, p in model.named_parameters()}
    out = {f"param[{n!r}]": p.detach() for n, p in model.named_parameters()}
    for p, state in opt.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                out[f"{key}[{names.get(p, '?')!r}]"] = value
    return out


def _snapshot(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _state_tensors(model, opt).items()}


class StepSession:
    """One step target in one mode: draws (batch, schedule) examples and runs them."""

    def __init__(self, target: StepTarget, mode: Mode) -> None:
        self.target, self.mode = target, mode
        arguments = {k: as_argument_strategy(k, v) for k, v in target.batch.items()}
        self.strategy = hst.tuples(
            examples(arguments, mode, target.dims), schedules(target.faults, target.max_steps)
        )
        self.inputs: dict[str, Any] = {}
        self.check_names = ["finite_state", "skip_is_noop", "progress"]
        if target.max_grad_norm is not None:
            self.check_names.append("clip_bound")
        if target.accumulation_steps > 1:
            self.check_names.append("accumulation")

    def describe(self, example: tuple[Example, list[Fault]]) -> dict[str, str]:
        batch, schedule = example
        return {
            "schedule": f"{self.target.warmup_steps} clean steps, then {schedule!r}",
            "batch": repr(batch),
        }

    # ----------------------------------------------------------------------- building

    def _fresh(self) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)  # the same initial weights for every run of the example
        model = self.target.model().to(self.mode.device, self.mode.storage_dtype)
        return model, self.target.optimizer(model.parameters())

    def _batch(self, example: Example, i: int) -> Batch:
        out = {}
        for k, r in example.recipes.items():
            if isinstance(r, TensorRecipe):
                r = dataclasses.replace(r, seed=r.seed + i)  # a new batch each step, same recipe
            v = round_to_mode(r.materialize(self.mode), self.mode)
            out[k] = v.to(self.mode.device) if isinstance(v, torch.Tensor) else v
        return out

    # ------------------------------------------------------------------------ running

    def run(
        self, example: tuple[Example, list[Fault]]
    ) -> tuple[dict[str, float], Violation | None]:
        batch_example, schedule = example
        t, mode = self.target, self.mode
        model, opt = self._fresh()
        step = t.make_step(model, opt, mode)
        current = [Fault("none")]
        losses: list[float] = []
        norms: list[float] = []

        def loss_fn(m: torch.nn.Module, b: Batch) -> torch.Tensor:
            with mode.autocast():
                loss = current[0].loss(t.loss(m, b))
            losses.append(abs(float(loss.detach())))
            return loss

        def record_norm(o: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            norms.append(
                total_norm(
                    [p.grad for g in o.param_groups for p in g["params"] if p.grad is not None]
                )
            )

        handle = opt.register_step_pre_hook(record_norm)
        plan = [Fault("none")] * t.warmup_steps + list(schedule)
        k = t.accumulation_steps
        violation = None
        try:
            for i, fault in enumerate(plan):
                batch = fault.batch(self._batch(batch_example, i), mode)
                self.inputs = {
                    "step": i,
                    "fault": repr(fault),
                    **{n: v.cpu() if isinstance(v, torch.Tensor) else v for n, v in batch.items()},
                }
                window = plan[i + 1 - k : i + 1] if (i + 1) % k == 0 else []
                clean_window_after_fault = (
                    bool(window)
                    and all(f.kind == "none" for f in window)
                    and any(f.kind != "none" for f in plan[: i + 1 - k])
                )
                watch = (fault.must_skip and k == 1) or clean_window_after_fault
                before = _snapshot(model, opt) if watch else None
                stepped_before = len(norms)
                current[0] = fault
                with fault.hooks(model):
                    step(batch, loss_fn)
                violation = self._after_step(i, fault, model, opt, before, norms[stepped_before:])
                if violation is not None:
                    break
        finally:
            handle.remove()
        if violation is None and k > 1:
            violation = self._accumulation(batch_example)
        figures = {"max_abs_output": max(losses, default=0.0), "grad_norm": max(norms, default=0.0)}
        return figures, violation

    def _after_step(
        self,
        i: int,
        fault: Fault,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        before: dict[str, torch.Tensor] | None,
        new_norms: list[float],
    ) -> Violation | None:
        where = f"after step {i} ({fault!r})"
        state = _state_tensors(model, opt)
        for key, v in state.items():
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                n = int((~torch.isfinite(v)).sum())
                return Violation(
                    "finite_state", f"{where}: {key} has {n} of {v.numel()} non-finite elements"
                )
        t = self.target
        if t.max_grad_norm is not None:
            # clipping in a low-precision dtype is exact only to a few of its eps
            slack = 1 + 4 * torch.finfo(self.mode.storage_dtype).eps
            for norm in new_norms:
                if norm > t.max_grad_norm * slack:
                    return Violation(
                        "clip_bound",
                        f"{where}: optimizer.step() saw gradient norm {norm:.4g} > max_grad_norm {t.max_grad_norm:.4g}",
                    )
        if before is None:
            return None
        changed = [k for k, v in state.items() if k not in before or not torch.equal(before[k], v)]
        if fault.must_skip:
            if changed:
                return Violation(
                    "skip_is_noop",
                    f"{where}: a faulty step must be skipped, but it changed {', '.join(changed[:4])}"
                    + (f" and {len(changed) - 4} more" if len(changed) > 4 else ""),
                )
        elif not any(k.startswith("param[") for k in changed):
            return Violation(
                "progress",
                f"{where}: the first clean window after a fault left every parameter unchanged: training has stalled",
            )
        return None

    def _accumulation(self, batch_example: Example) -> Violation | None:
        """k clean micro-batches through the step versus one float64 step on their concatenation.

        The error is normwise over the whole update: ``max|Δ - Δ_ref| / max|Δ_ref|`` across all
        parameters, within 10× the mode's tolerance.
        """
        t, mode = self.target, self.mode
        k = t.accumulation_steps
        batches = [self._batch(batch_example, 1000 + j) for j in range(k)]
        model, opt = self._fresh()
        start = [p.detach().double() for p in model.parameters()]
        step = t.make_step(model, opt, mode)

        def loss_fn(m: torch.nn.Module, b: Batch) -> torch.Tensor:
            with mode.autocast():
                return t.loss(m, b)

        for b in batches:
            step(b, loss_fn)
        # the same initial weights (rounded to the mode), then upcast: the reference starts where the step did
        ref_model = self._fresh()[0].to("cpu", torch.float64)
        ref_opt = t.optimizer(ref_model.parameters())
        joined = {
            n: torch.cat([b[n] for b in batches]).cpu()
            if isinstance(batches[0][n], torch.Tensor)
            else batches[0][n]
            for n in batches[0]
        }
        joined = {
            n: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for n, v in joined.items()
        }
        t.loss(ref_model, joined).backward()
        if t.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(ref_model.parameters(), t.max_grad_norm)
        ref_opt.step()
        got = [
            p.detach().cpu().double() - p0.cpu()
            for p, p0 in zip(model.parameters(), start, strict=True)
        ]
        want = [q.detach() - p0.cpu() for q, p0 in zip(ref_model.parameters(), start, strict=True)]
        scale = max(float(w.abs().max()) for w in want)
        err = max(float((g - w).abs().max()) for g, w in zip(got, want, strict=True)) / max(
            scale, 1e-30
        )
        tol = mode.tolerance() * GRADIENT_TOLERANCE_FACTOR
        if scale > 0 and err > tol:
            worst = max(range(len(got)), key=lambda i: float((got[i] - want[i]).abs().max()))
            name = [n for n, _ in model.named_parameters()][worst]
            size = len(next(v for v in batches[0].values() if isinstance(v, torch.Tensor)))
            return Violation(
                "accumulation",
                f"{k} micro-batches of {size} gave an update that differs from one float64 step on the concatenated "
                f"batch by {err:.3g} (normwise; tolerance {tol:.3g}); worst in {name!r}",
            )
        return None


# ------------------------------------------------------------------------ public API


def step_target(
    *,
    model: Callable[[], torch.nn.Module],
    optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer],
    loss: LossFn,
    batch: Mapping[str, Any],
    name: str | None = None,
    expect: str | Mapping[str, str] | None = None,
    reason: str | None = None,
    faults: Sequence[str] = FAULTS[1:],
    warmup_steps: int = 8,
    max_steps: int = 6,
    accumulation_steps: int = 1,
    max_grad_norm: float | None = None,
    dims: Mapping[str, tuple[int, int]] | None = None,
) -> Callable[[StepFactory], StepTarget]:
    """Declare a training-step target; decorates a step factory ``make_step(model, optimizer, mode)``."""
    schedules(faults, max_steps)  # validates the fault names
    for arg, value in (
        ("warmup_steps", warmup_steps),
        ("max_steps", max_steps),
        ("accumulation_steps", accumulation_steps),
    ):
        if not isinstance(value, int) or value < (0 if arg == "warmup_steps" else 1):
            raise InvalidArgument(
                f"step_target({arg}={value!r}): must be an int >= {0 if arg == 'warmup_steps' else 1}"
            )
    for arg, fn in (("model", model), ("optimizer", optimizer), ("loss", loss)):
        if not callable(fn):
            raise InvalidArgument(f"step_target({arg}={fn!r}): must be callable")
    if expect not in (None, "pass") and not reason:
        raise InvalidArgument(f"expect={expect!r} needs reason='...': say in one line why it fails")
    arguments = {k: as_argument_strategy(k, v) for k, v in batch.items()}
    resolve_dims(arguments, dims)

    def build(make_step: StepFactory) -> StepTarget:
        return StepTarget(
            make_step=make_step,
            model=model,
            optimizer=optimizer,
            loss=loss,
            batch=dict(batch),
            name=name or default_name(make_step),
            named=name is not None,
            expect=_normalize_expect(expect),
            reason=reason,
            faults=tuple(faults),
            warmup_steps=warmup_steps,
            max_steps=max_steps,
            accumulation_steps=accumulation_steps,
            max_grad_norm=max_grad_norm,
            dims=dict(dims or {}),
        )

    return build


def guarded_step(**options: Any) -> StepFactory:
    """A step factory that trains through :class:`GuardedStep` with ``options``.

    In ``amp-fp16`` it adds a ``torch.amp.GradScaler`` on the mode's device, as ``torch.amp``
    recommends (a scaler cannot unscale the float16 gradients of pure ``fp16`` parameters).
    """

    def make_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode) -> Step:
        scaler = (
            torch.amp.GradScaler(mode.device, init_scale=2.0**10)
            if mode.name == "amp-fp16"
            else None
        )
        guard = GuardedStep(model, optimizer, scaler=scaler, **options)

        def step(batch: Batch, loss_fn: LossFn) -> Any:
            return guard.step(loss_fn(model, batch))

        step.guard = guard  # type: ignore[attr-defined]
        return step

    make_step.__name__ = "guarded_step"
    return make_step


def fuzz_step(
    make_step: StepFactory,
    *,
    model: Callable[[], torch.nn.Module],
    optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer],
    loss: LossFn,
    batch: Mapping[str, Any],
    modes: Sequence[str | Mode] | str = MODE_NAMES,
    device: str = "cpu",
    profile: str | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    report_dir: str | None = None,
    **options: Any,
) -> Report:
    """Stress one training step under injected faults in every mode; see :func:`step_target`."""
    t = step_target(model=model, optimizer=optimizer, loss=loss, batch=batch, **options)(make_step)
    return run(
        [t],
        modes=modes,
        device=device,
        profile=profile,
        max_examples=max_examples,
        seed=seed,
        report_dir=report_dir,
    )
