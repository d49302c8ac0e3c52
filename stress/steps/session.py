"""Stress-testing training steps as users write them, under injected faults.

A training step is given as a *step factory*: ``make_step(model, optimizer, mode)`` returns
``step(batch, loss_fn)``. One call is whatever the user's loop does with one batch: a plain
step, a step that splits the batch into micro-batches itself and calls ``optimizer.step()`` once
(nanoGPT's loop), or one micro-batch of an accumulation window the harness drives call by call.
``loss_fn(model, batch)`` computes the target's loss in the mode (under autocast for amp modes);
a loss may return a scalar or ``(sum, count)`` for a token-weighted mean.

The harness builds the model and optimizer in the mode, runs a clean warm-up, then a
Hypothesis-drawn schedule of faults, and learns from ``optimizer.step()`` itself how many calls
make one step. It checks after every call:

==================== ======================================================================
``finite_state``     parameters and every optimizer state tensor stay finite
``skip_is_noop``     a call given a fault that must be skipped (NaN/Inf batch, loss spike,
                     infinite gradient) leaves parameters and optimizer state bit-identical
                     (where one call is one step)
``clip_bound``       with ``max_grad_norm``: the gradient norm ``optimizer.step()`` sees is at
                     most ``max_grad_norm``
``progress``         the first fully clean window after a fault updates the parameters: the
                     scaler or the guard has not stalled training (the collapse of seed 003)
``step_equivalence`` every clean window ending in one ``optimizer.step()`` leaves parameters and
                     optimizer state where the same optimizer in float64 gets from the same
                     state with one plain step on the whole batch (``zero_grad(); loss(model,
                     batch).backward(); step()``; the loss's global count for ``(sum, count)``;
                     clipped to ``max_grad_norm`` when declared), within 10 times the mode's
                     tolerance (relative 2-norm) and two units in the last place of the dtype
==================== ======================================================================
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as hst
import torch

from ..core.checks import Violation
from ..core.modes import Mode
from ..core.numerics import as_float64, dtype_facts, format_number, total_norm, unravel
from ..core.options import MODE_NAMES, StepOptions, options_doc
from ..core.outcomes import Outcome
from ..core.recipes import Example, TensorRecipe
from ..core.strategies import as_argument_strategy, examples, resolve_dims
from ..core.validation import check_callable, short_repr
from ..engine.evaluation import BYTES_PER_ELEMENT, round_to_mode
from ..engine.runner import run
from ..engine.session import Observation, UserError
from ..engine.targets import BaseTarget, default_name
from ..errors import InvalidArgument
from ..report.model import Report
from .faults import Fault, schedules
from .guard import GuardedStep

__all__ = ["StepSession", "StepTarget", "fuzz_step", "guarded_step", "step_target"]

# An update is the gradient of a whole model, through every layer's rounding (under bfloat16
# autocast the correct steps of suites/training.py differ from float64 by up to 0.13, relative
# 2-norm): step_equivalence allows 10 times the mode's output tolerance. The bugs it is for are
# far larger: the seed-001 step is off by 50% and more.
STEP_TOLERANCE_FACTOR = 10.0

Batch = dict[str, Any]
LossFn = Callable[[torch.nn.Module, Batch], Any]
Step = Callable[[Batch, LossFn], Any]
StepFactory = Callable[[torch.nn.Module, torch.optim.Optimizer, Mode], Step]


@dataclass
class StepTarget(BaseTarget):
    """A training step with its model, optimizer, loss and batch strategies."""

    make_step: StepFactory
    model: Callable[[], torch.nn.Module]
    optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
    loss: LossFn
    batch: dict[str, Any]
    options: StepOptions
    name: str
    named: bool = False
    source: str | None = None

    def session(self, mode: Mode) -> StepSession:
        return StepSession(self, mode)


def loss_value(loss: Any) -> torch.Tensor:
    """The scalar a loss stands for: itself, or ``sum / count`` for a token-weighted pair (0 when
    no token counts: there is nothing to learn from)."""
    value = loss
    if isinstance(loss, (tuple, list)) and len(loss) == 2:
        total, count = loss
        value = total / count if bool(count != 0) else total * 0
    if not (isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel() == 1):
        raise TypeError(
            f"the loss returned {short_repr(loss)}"
            + ("" if isinstance(loss, torch.Tensor) else f" ({type(loss).__name__})")
            + "; a loss returns a scalar floating-point tensor or a (sum, count) pair of tensors"
        )
    return value


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


def _optimizer_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """``opt.state_dict()`` with its tensors cloned: what ``deepcopy`` gives, at a fraction of its cost."""
    state = opt.state_dict()
    return {
        "state": {
            k: {n: v.clone() if isinstance(v, torch.Tensor) else v for n, v in s.items()}
            for k, s in state["state"].items()
        },
        "param_groups": [dict(g) for g in state["param_groups"]],
    }


@dataclass
class _Window:
    """The calls since the last optimizer step, and the state before the first of them."""

    calls: list[tuple[int, Fault, Batch]]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]


class StepSession:
    """One step target in one mode: draws (batch, schedule) examples and runs them."""

    def __init__(self, target: StepTarget, mode: Mode) -> None:
        self.target, self.mode = target, mode
        self.options = target.options
        arguments = {k: as_argument_strategy(k, v) for k, v in target.batch.items()}
        self.strategy = hst.tuples(
            examples(arguments, mode, target.options.dims),
            schedules(target.options.faults, target.options.max_steps),
        )
        self.check_names = target.options.check_names
        # a factory may say how many clean calls its step needs before it judges spikes
        # (``guarded_step``: the guard's ``warmup``); faults come after both
        needs = getattr(target.make_step, "warmup", 0)
        self.warmup_steps = max(target.options.warmup_steps, needs if isinstance(needs, int) else 0)
        # the clip a factory declares (``guarded_step(max_grad_norm=...)``) when the target does not
        self.max_grad_norm: float | None = target.options.max_grad_norm
        if self.max_grad_norm is None:
            self.max_grad_norm = getattr(target.make_step, "max_grad_norm", None)
        self.last_inputs: dict[str, Any] = {}
        self._shadow: torch.nn.Module | None = None

    def describe(self, example: tuple[Example, list[Fault]]) -> dict[str, str]:
        batch, schedule = example
        return {
            "schedule": f"{self.warmup_steps} clean steps, then {schedule!r}",
            "batch": repr(batch),
        }

    def memory(self, example: tuple[Example, list[Fault]]) -> int:
        return example[0].numel() * BYTES_PER_ELEMENT

    # ----------------------------------------------------------------------- building

    def _fresh(self) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """The user's model and optimizer, built afresh; their factories' errors are the user's."""
        torch.manual_seed(0)  # the same initial weights for every run of the example
        try:
            model = self.target.model()
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"model() returned {short_repr(model)}, not an nn.Module")
            if not any(p.requires_grad for p in model.parameters()):
                raise TypeError(
                    "model() built a module with no trainable parameter: nothing to step"
                )
            model = model.to(self.mode.device, self.mode.storage_dtype)
            return model, self.target.optimizer(model.parameters())
        except Exception as e:
            raise UserError(e) from e

    def _batch(self, example: Example, i: int) -> Batch:
        """Call ``i``'s batch: the same recipe with a seed of its own."""
        mode = self.mode
        values: dict[str, Any] = {}
        for k, r in example.recipes.items():
            if isinstance(r, TensorRecipe):
                r = dataclasses.replace(r, seed=r.seed + i)
            values[k] = r.materialize(mode, values)
        out = {}
        for k, value in values.items():
            rounded = round_to_mode(value, mode)
            out[k] = rounded.to(mode.device) if isinstance(rounded, torch.Tensor) else rounded
        return out

    # ------------------------------------------------------------------------ running

    def run(self, example: tuple[Example, list[Fault]], *, explain: bool = False) -> Observation:
        batch_example, schedule = example
        t, mode = self.target, self.mode
        model, opt = self._fresh()
        self._shadow = None
        try:
            step = t.make_step(model, opt, mode)
            if not callable(step):
                raise TypeError(
                    f"{t.name} returned {short_repr(step)}; a step factory returns step(batch, loss_fn)"
                )
        except Exception as e:
            raise UserError(e) from e
        current = [Fault("none")]
        losses: list[float] = []
        norms: list[float] = []

        def loss_fn(m: torch.nn.Module, b: Batch) -> Any:
            with mode.autocast():
                loss = current[0].loss(t.loss(m, b))
            losses.append(abs(float(loss_value(loss).detach())))
            return loss

        def record_norm(o: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            norms.append(
                total_norm(
                    [p.grad for g in o.param_groups for p in g["params"] if p.grad is not None]
                )
            )

        handle = opt.register_step_pre_hook(record_norm)
        plan = [Fault("none")] * self.warmup_steps + list(schedule)
        violations: list[Violation] = []
        period = 0  # calls per optimizer step, learned from the first window that steps
        window: _Window | None = None  # the calls since the last step (or since a skipped call)
        since_fault: tuple[int, dict[str, torch.Tensor]] | None = (
            None  # clean calls since, params then
        )
        try:
            for i, fault in enumerate(plan):
                batch = fault.batch(self._batch(batch_example, i), mode)
                self.last_inputs = {
                    "step": i,
                    "fault": repr(fault),
                    **{n: x.cpu() if isinstance(x, torch.Tensor) else x for n, x in batch.items()},
                }
                if window is None:
                    window = _Window(
                        [],
                        {k: x.detach().clone() for k, x in model.state_dict().items()},
                        _optimizer_state(opt),
                    )
                window.calls.append((i, fault, batch))
                before = _snapshot(model, opt) if fault.must_skip else None
                stepped = len(norms)
                current[0] = fault
                try:
                    with fault.hooks(model):
                        step(batch, loss_fn)
                except Exception as e:
                    raise UserError(e) from e
                steps = len(norms) - stepped
                if steps and not period:
                    period = len(window.calls)
                where = f"after call {i} ({fault!r})"
                # a non-finite state makes every other check's failure a consequence of it
                violations = self._finite_state(where, model, opt) or (
                    self._clip_bound(where, norms[stepped:])
                    + (
                        self._skip_is_noop(where, before, model, opt)
                        if before is not None and period == 1
                        else []
                    )
                    + self._after_fault(where, fault, period, model, since_fault)
                )
                since_fault = self._count_clean(fault, period, model, since_fault)
                if (
                    not violations
                    and self.options.step_equivalence
                    and steps == 1
                    and all(f.kind == "none" for _, f, _ in window.calls)
                ):
                    violations = self._equivalence(where, window, model, opt, norms[-1])
                if steps or (fault.kind == "none" and not _pending(model)):
                    # a step, or a clean call skipped as a whole (a GradScaler's overflow): a new
                    # window; a faulty call leaves its window open (and never compared)
                    window = None
                if violations:
                    break
        finally:
            handle.remove()
        figures = {"max_abs_output": max(losses, default=0.0), "grad_norm": max(norms, default=0.0)}
        return Observation(figures, violations, self.last_inputs)

    def _after_fault(
        self,
        where: str,
        fault: Fault,
        period: int,
        model: torch.nn.Module,
        since_fault: tuple[int, dict[str, torch.Tensor]] | None,
    ) -> list[Violation]:
        """``progress``: the first full window of clean calls after a fault moved the parameters."""
        if (
            fault.kind != "none"
            or since_fault is None
            or not period
            or since_fault[0] + 1 != period
        ):
            return []
        return self._progress(where, since_fault[1], model)

    @staticmethod
    def _count_clean(
        fault: Fault,
        period: int,
        model: torch.nn.Module,
        since_fault: tuple[int, dict[str, torch.Tensor]] | None,
    ) -> tuple[int, dict[str, torch.Tensor]] | None:
        if fault.kind != "none":
            return 0, {k: x.detach().clone() for k, x in model.named_parameters()}
        if since_fault is None or not period or since_fault[0] + 1 >= period:
            return None  # judged (or nothing to judge)
        return since_fault[0] + 1, since_fault[1]

    # ------------------------------------------------------------------------ checks

    def _finite_state(
        self, where: str, model: torch.nn.Module, opt: torch.optim.Optimizer
    ) -> list[Violation]:
        for key, x in _state_tensors(model, opt).items():
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                n = int((~torch.isfinite(x)).sum())
                return [
                    Violation(
                        "finite_state",
                        f"{where}: {key} has {n} of {x.numel()} non-finite elements",
                    )  # one kind for all of the state: a second parameter is not a second bug
                ]
        return []

    def _clip_bound(self, where: str, norms: Sequence[float]) -> list[Violation]:
        bound = self.max_grad_norm
        if bound is None:
            return []
        # clipping in a low-precision dtype is exact only to a few of its eps
        slack = 1 + 4 * torch.finfo(self.mode.storage_dtype).eps
        for norm in norms:
            if norm > bound * slack:
                return [
                    Violation(
                        "clip_bound",
                        f"{where}: optimizer.step() saw gradient norm {norm:.4g} > max_grad_norm {bound:.4g}",
                    )
                ]
        return []

    def _skip_is_noop(
        self,
        where: str,
        before: dict[str, torch.Tensor],
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
    ) -> list[Violation]:
        state = _state_tensors(model, opt)
        changed = [k for k, x in state.items() if k not in before or not torch.equal(before[k], x)]
        if not changed:
            return []
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        return [
            Violation(
                "skip_is_noop",
                f"{where}: a faulty step must be skipped, but it changed {', '.join(changed[:4])}{more}",
            )
        ]

    def _progress(
        self, where: str, params: dict[str, torch.Tensor], model: torch.nn.Module
    ) -> list[Violation]:
        if any(not torch.equal(params[n], p) for n, p in model.named_parameters()):
            return []
        return [
            Violation(
                "progress",
                f"{where}: the first clean window after a fault left every parameter unchanged: training has stalled",
            )
        ]

    def _equivalence(
        self,
        where: str,
        window: _Window,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        seen_norm: float,
    ) -> list[Violation]:
        """The window against one float64 step of the same optimizer on its whole batch.

        Relative 2-norm errors: of the parameters' update against the float64 update, and of each
        kind of optimizer state (``exp_avg`` …, over every parameter) against its float64 value,
        each element first allowed two units in the last place of its own dtype. Optimizers that
        normalise each element (Adam) amplify the rounding of tiny gradients; a 2-norm weighs
        them by what they contribute to the step instead of letting one element decide.
        """
        t, mode = self.target, self.mode
        if self._shadow is None:  # one float64 copy of the model per run, loaded per window
            self._shadow = copy.deepcopy(model).to("cpu", torch.float64)
        reference = self._shadow
        reference.load_state_dict(window.model_state)
        ref_opt = t.optimizer(reference.parameters())
        ref_opt.load_state_dict(window.optimizer_state)
        batches = [b for _, _, b in window.calls]
        joined: dict[str, Any] = {}
        for n in batches[0]:
            first = batches[0][n]
            joined[n] = (
                torch.cat([b[n] for b in batches]).cpu()
                if isinstance(first, torch.Tensor)
                else first
            )
            if isinstance(joined[n], torch.Tensor) and joined[n].is_floating_point():
                joined[n] = as_float64(joined[n])
        ref_opt.zero_grad()
        loss_value(t.loss(reference, joined)).backward()
        ref_norm = total_norm([p.grad for p in reference.parameters() if p.grad is not None])
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(reference.parameters(), self.max_grad_norm)
        ref_opt.step()
        state = _state_tensors(model, opt)
        want = {k: x.detach() for k, x in _state_tensors(reference, ref_opt).items()}
        start = {
            f"param[{n!r}]": as_float64(window.model_state[n]) for n, _ in model.named_parameters()
        }
        groups: dict[str, list[str]] = {}
        for key in want:
            if (
                key in state
                and state[key].shape == want[key].shape
                and want[key].is_floating_point()
            ):
                groups.setdefault(key.partition("[")[0], []).append(key)
        tol = STEP_TOLERANCE_FACTOR * mode.tolerance(self.options.tolerances)
        for group, keys in groups.items():
            is_param = group == "param"
            diffs, scales = [], []
            for key in keys:
                got, ref = as_float64(state[key]), want[key]
                base = start[key] if is_param else torch.zeros_like(ref)
                ulp = dtype_facts(state[key].dtype).eps * ref.abs()
                diffs.append(((got - ref).abs() - 2 * ulp).clamp_min(0))
                scales.append(ref - base)
            num = math.sqrt(sum(float(d.square().sum()) for d in diffs))
            den = math.sqrt(sum(float(u.square().sum()) for u in scales))
            if den == 0.0 or num <= tol * den:
                continue
            err = num / den
            worst = max(range(len(keys)), key=lambda j: float(diffs[j].square().sum()))
            key = keys[worst]
            flat = int(diffs[worst].reshape(-1).argmax())
            got_v = float(as_float64(state[key]).reshape(-1)[flat])
            ref_v = float(want[key].reshape(-1)[flat])
            rows = len(next(x for x in joined.values() if isinstance(x, torch.Tensor)))
            calls = len(window.calls)
            what = "one call" if calls == 1 else f"{calls} calls (micro-batches)"
            subject = "the parameters' update" if is_param else f"the optimizer's {group}"
            if is_param:
                got_v -= float(start[key].reshape(-1)[flat])
                ref_v -= float(start[key].reshape(-1)[flat])
            message = (
                f"{where}: {what}: {subject} differs from one float64 {type(opt).__name__} step on the "
                f"whole batch ({rows} rows) by {err:.3g} (relative 2-norm; tolerance {tol:.3g}); worst in "
                f"{key} at index {unravel(flat, want[key].shape)}: {format_number(got_v)} vs float64 "
                f"{format_number(ref_v)}"
            )
            outcome = Outcome.FAIL
            tiny = mode.facts.tiny
            if any(
                isinstance(x, torch.Tensor)
                and x.is_floating_point()
                and bool(((x != 0) & (x.abs() < tiny)).any())
                for x in joined.values()
            ):
                outcome = Outcome.LIMIT
                message += f". Below resolution: the batch holds values smaller than {mode.facts.name}'s smallest normal"
            elif self.max_grad_norm is None and seen_norm < 0.9 * ref_norm:
                message += (
                    f". The gradient optimizer.step() saw has norm {format_number(seen_norm)}, the "
                    f"whole batch's float64 gradient {format_number(ref_norm)}: if the step clips "
                    "gradients, declare max_grad_norm= to the target so the reference clips too"
                )
            return [Violation("step_equivalence", message, group, outcome, {"step_error": err})]
        return []


def _pending(model: torch.nn.Module) -> bool:
    """Whether gradients wait for an optimizer step: an accumulation window is open."""
    return any(p.grad is not None and bool(p.grad.ne(0).any()) for p in model.parameters())


# ------------------------------------------------------------------------ public API


def step_target(
    *,
    model: Callable[[], torch.nn.Module],
    optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer],
    loss: LossFn,
    batch: Mapping[str, Any],
    **options: Any,
) -> Callable[[StepFactory], StepTarget]:
    """Declare a training-step target; decorates a step factory ``make_step(model, optimizer, mode)``.

    ``model()`` builds the model, ``optimizer(params)`` its optimizer, ``loss(model, batch)`` the
    loss (a scalar, or ``(sum, count)``), and ``batch`` maps each batch entry to a strategy.

    Options:

    {options}
    """
    if isinstance(model, torch.nn.Module):
        raise InvalidArgument(
            f"model={type(model).__name__}(...): give a function that builds the "
            f"model, e.g. model=lambda: torch.nn.Linear(6, 3): every example starts from a fresh one"
        )
    if isinstance(optimizer, torch.optim.Optimizer):
        raise InvalidArgument(
            f"optimizer={type(optimizer).__name__}(...): give a function of the "
            "parameters, e.g. optimizer=lambda params: torch.optim.SGD(params, lr=0.1)"
        )
    for arg, fn in (("model", model), ("optimizer", optimizer), ("loss", loss)):
        check_callable(arg, fn, context="step_target")
    if not isinstance(batch, Mapping):
        raise InvalidArgument(
            f"batch={short_repr(batch)}: must be a dict from each batch entry's name to its "
            "strategy, e.g. batch={'x': st.activations(('B', 6))}"
        )
    unknown = [k for k in options if k not in StepOptions.names()]
    if unknown:
        close = difflib.get_close_matches(unknown[0], StepOptions.names(), n=1)
        raise InvalidArgument(
            f"{unknown[0]}={short_repr(options[unknown[0]])}: not an option of a training-step "
            "target"
            + (f" (did you mean {close[0]}?)" if close else "")
            + f"; its options are {', '.join(StepOptions.names())}"
        )
    opts = StepOptions(**options)
    arguments = {k: as_argument_strategy(k, v) for k, v in batch.items()}
    resolve_dims(arguments, opts.dims)

    def build(make_step: StepFactory) -> StepTarget:
        return StepTarget(
            make_step=make_step,
            model=model,
            optimizer=optimizer,
            loss=loss,
            batch=dict(batch),
            options=opts,
            name=opts.name or default_name(make_step),
            named=opts.name is not None,
        )

    return build


step_target.__doc__ = (step_target.__doc__ or "").replace(
    "{options}", options_doc(StepOptions).strip()
)


def guarded_step(**options: Any) -> StepFactory:
    """A step factory that trains through :class:`GuardedStep` with ``options``.

    In ``amp-fp16`` it adds a ``torch.amp.GradScaler`` on the mode's device, as ``torch.amp``
    recommends (a scaler cannot unscale the float16 gradients of pure ``fp16`` parameters). Its
    ``warmup`` attribute (the guard's) makes the harness's clean warm-up at least that long, and
    its ``max_grad_norm`` is the target's unless the target declares its own.
    """

    def make_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode) -> Step:
        scaler = (
            torch.amp.GradScaler(mode.device, init_scale=2.0**10)
            if mode.name == "amp-fp16"
            else None
        )
        guard = GuardedStep(model, optimizer, scaler=scaler, **options)

        def step(batch: Batch, loss_fn: LossFn) -> Any:
            return guard.step(loss_value(loss_fn(model, batch)))

        step.guard = guard  # type: ignore[attr-defined]
        return step

    make_step.__name__ = "guarded_step"
    # the harness runs this many clean calls first (the guard judges no spike before then),
    # and its reference step clips as the guard does
    make_step.warmup = options.get(  # type: ignore[attr-defined]
        "warmup", inspect.signature(GuardedStep).parameters["warmup"].default
    )
    make_step.max_grad_norm = options.get("max_grad_norm")  # type: ignore[attr-defined]
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
    jobs: int | None = None,
    strict: bool = False,
    report_dir: str | None = None,
    **options: Any,
) -> Report:
    """Stress one training step under injected faults in every mode; options as :func:`step_target`."""
    t = step_target(model=model, optimizer=optimizer, loss=loss, batch=batch, **options)(make_step)
    return run(
        [t],
        modes=modes,
        device=device,
        profile=profile,
        max_examples=max_examples,
        seed=seed,
        jobs=jobs,
        strict=strict,
        report_dir=report_dir,
    )
