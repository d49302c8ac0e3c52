"""Every option a target or a run can be given, declared once.

``FunctionOptions`` (``@stress.target``, ``stress.fuzz``) and ``StepOptions``
(``@stress.step_target``, ``stress.fuzz_step``) share ``TargetOptions``; ``RunOptions`` holds what
a run is told (modes, profile, workers). Each field carries its documentation and, where the
command line has it, its flag: ``stress.fuzz``'s docstring, the CLI, the pytest marker and the
report all read these classes, and ``__post_init__`` validates every value in one place.

This module imports neither torch nor Hypothesis: the pytest plugin loads it cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ..errors import InvalidArgument
from . import validation as v
from .outcomes import Expect, parse_expectations

__all__ = [
    "DEVICES",
    "MODE_NAMES",
    "PROFILE_NAMES",
    "FunctionOptions",
    "RunOptions",
    "StepOptions",
    "TargetOptions",
    "options_doc",
]

MODE_NAMES: tuple[str, ...] = ("fp32", "fp16", "bf16", "amp-fp16", "amp-bf16")
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
PROFILE_NAMES: tuple[str, ...] = ("ci", "dev", "thorough")
SHRINK_CHOICES: tuple[str, ...] = ("all", "unexpected")
DEFAULT_DEADLINE = 60.0  # seconds per example: a slow CPU op stays far below it
DEFAULT_ERROR_FLOOR = 1.0


def option(default: Any, doc: str, *, cli: str | None = None) -> Any:
    """A dataclass field with its one-line documentation and, optionally, its CLI flag."""
    kwargs: dict[str, Any] = {"metadata": {"doc": doc, "cli": cli}}
    if isinstance(default, (dict, list)):
        kwargs["default_factory"] = type(default)
    else:
        kwargs["default"] = default
    return field(**kwargs)


def _mode_name(text: str) -> str:
    return text.partition("@")[0]


def _check_modes(name: str, value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (tuple, list)) or not items:
        raise InvalidArgument(
            f"{name}={value!r}: must be a non-empty sequence of mode names; "
            f"accepted names are {', '.join(MODE_NAMES)}"
        )
    # a Mode object stands for its label ("fp16", "fp16@cuda")
    modes = tuple(m.strip() if isinstance(m, str) else getattr(m, "label", m) for m in items)
    bad = [m for m in modes if not isinstance(m, str) or _mode_name(m) not in MODE_NAMES]
    if bad:
        raise InvalidArgument(
            f"{name}={value!r}: unknown mode {bad[0]!r}; accepted modes are {', '.join(MODE_NAMES)}"
        )
    twice = [m for i, m in enumerate(modes) if m in modes[:i]]
    if twice:
        raise InvalidArgument(f"{name}={value!r}: {twice[0]!r} is given twice")
    return tuple(str(m) for m in modes)


def _positive_mapping(name: str, value: object) -> dict[str, float]:
    return v.check_mapping(
        name, value, MODE_NAMES, lambda label, x: v.check_number(label, x, positive=True)
    )


@dataclass(frozen=True)
class TargetOptions:
    """What any target can be told."""

    name: str | None = option(None, "the name in reports (default: the function's own name)")
    expect: Mapping[str, Expect] = option(
        {},
        "what fails where: 'fail', a check name, a tuple of them, 'limit', 'may-fail' or "
        "stress.Expect(...), for every mode or per mode ({'fp16': 'finite_forward', 'cuda:bf16': ...})",
    )
    reason: str | None = option(None, "one line: why it fails where `expect` says so")
    modes: tuple[str, ...] | None = option(
        None, "only these modes (default: every mode of the run)"
    )
    dims: Mapping[str, tuple[int, int]] = option(
        {}, "size range of each dimension name, e.g. {'B': (1, 64)} (default (1, 16))"
    )
    tolerances: Mapping[str, float] = option(
        {}, "normwise error tolerance per mode, e.g. {'fp16': 3e-2} (default: DEFAULT_TOLERANCES)"
    )
    max_grad_norm: float | None = option(
        None, "a bound on the gradient norm (a step clips to it)", cli="--max-grad-norm"
    )
    max_examples: int | None = option(
        None, "examples per mode for this target (default: the profile's)"
    )
    deadline: float | None = option(
        None,
        f"seconds one example may run before its worker is stopped (default {DEFAULT_DEADLINE:g})",
    )
    strict: bool | None = option(
        None, "limits and an unverified reference fail the run (default: the run's --strict)"
    )

    # what the checks of this kind of target are called, for `expect` and the report
    check_names: Any = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        v.check_type("name", self.name, str, allow_none=True)
        v.check_type("reason", self.reason, str, allow_none=True)
        given = self.expect
        expect = parse_expectations(given, MODE_NAMES)
        object.__setattr__(self, "expect", expect)
        if any(e.kind != "pass" for e in expect.values()) and not self.reason:
            raise InvalidArgument(
                f"expect={given!r} needs reason='...': say in one line why it fails"
            )
        if self.modes is not None:
            object.__setattr__(self, "modes", _check_modes("modes", self.modes))
            if isinstance(given, Mapping):
                ran = {_mode_name(m) for m in self.modes}
                idle = [k for k in given if str(k).rpartition(":")[2] not in ran]
                if idle:
                    raise InvalidArgument(
                        f"expect={given!r} names {idle[0]!r}, a mode this target does not run "
                        f"(modes={self.modes!r})"
                    )
        object.__setattr__(self, "dims", v.check_dims(self.dims))
        object.__setattr__(self, "tolerances", _positive_mapping("tolerances", self.tolerances))
        v.check_number("max_grad_norm", self.max_grad_norm, positive=True, allow_none=True)
        v.check_int("max_examples", self.max_examples, minimum=1, allow_none=True)
        v.check_number("deadline", self.deadline, positive=True, allow_none=True)
        if self.strict is not None:
            v.check_bool("strict", self.strict)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.init)

    @classmethod
    def split(cls, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Keyword arguments as (options of this class, everything else)."""
        names = set(cls.names())
        return (
            {k: x for k, x in kwargs.items() if k in names},
            {k: x for k, x in kwargs.items() if k not in names},
        )

    def replace(self, **changes: Any) -> Any:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values.update(changes)
        return type(self)(**values)

    def to_json(self) -> dict[str, Any]:
        """The options a report records beside each result (callables by name)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if not f.init or f.name in ("name", "reason"):
                continue
            value = getattr(self, f.name)
            if f.name == "expect":
                value = {k: e.to_json() for k, e in value.items()}
            elif callable(value):
                value = getattr(value, "__qualname__", repr(value))
            elif isinstance(value, tuple):
                value = list(value)
            elif not isinstance(value, (str, int, float, bool, dict, type(None))):
                value = str(value)
            out[f.name] = value
        return out


@dataclass(frozen=True)
class FunctionOptions(TargetOptions):
    """What a function or module target can be told, on top of :class:`TargetOptions`."""

    wrt: tuple[str, ...] | None = option(
        None, "arguments whose gradients are checked (default: every floating one)", cli="--wrt"
    )
    gradient_tolerances: Mapping[str, float] = option(
        {}, "gradient error tolerance per mode (default: GRADIENT_TOLERANCES)"
    )
    error_floor: float = option(
        DEFAULT_ERROR_FLOOR,
        "errors are relative above this magnitude and absolute below it",
        cli="--error-floor",
    )
    max_output: float | None = option(
        None, "a bound on every output's magnitude", cli="--max-output"
    )
    gradient_error: bool = option(True, "compare gradients with float64 too")
    backward_error: bool = option(
        False,
        "excuse an error that a one-eps change of the inputs explains (backward-error semantics)",
        cli="--backward-error",
    )
    reference: Callable[..., Any] | str | None = option(
        None,
        "a trusted implementation to compare with (same signature), or 'torch' for the PyTorch op "
        "of the same name",
        cli="--reference",
    )
    reference_dtype: Any = option(
        None,
        "the dtype the reference runs in when it cannot run in float64, e.g. torch.float32",
        cli="--reference-dtype",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self,
            "gradient_tolerances",
            _positive_mapping("gradient_tolerances", self.gradient_tolerances),
        )
        if self.wrt is not None:
            wrt = (self.wrt,) if isinstance(self.wrt, str) else self.wrt
            if not isinstance(wrt, (tuple, list)) or not all(isinstance(w, str) for w in wrt):
                raise InvalidArgument(f"wrt={self.wrt!r}: must be a tuple of argument names")
            object.__setattr__(self, "wrt", tuple(wrt))
        v.check_number("error_floor", self.error_floor, positive=True)
        v.check_number("max_output", self.max_output, positive=True, allow_none=True)
        v.check_bool("gradient_error", self.gradient_error)
        v.check_bool("backward_error", self.backward_error)
        if self.reference is not None and not (
            callable(self.reference) or isinstance(self.reference, str)
        ):
            raise InvalidArgument(
                f"reference={self.reference!r}: must be a function, 'torch' or 'module:function'"
            )
        if self.reference_dtype is not None:
            if self.reference is None:
                raise InvalidArgument(
                    f"reference_dtype={self.reference_dtype!r} without reference=: it is the dtype "
                    "the reference runs in; give reference= too, or drop it"
                )
            object.__setattr__(
                self, "reference_dtype", _dtype("reference_dtype", self.reference_dtype)
            )
        object.__setattr__(self, "check_names", _function_checks(self))
        _check_expected_checks(self)


def _dtype(name: str, value: object) -> Any:
    import torch

    if isinstance(value, str):
        value = getattr(torch, value.removeprefix("torch."), value)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise InvalidArgument(
            f"{name}={value!r}: must be a floating torch dtype, e.g. torch.float32"
        )
    return value


# what makes a target run a check it does not run by default
_ENABLED_BY = {
    "output_bound": "max_output=",
    "gradient_bound": "max_grad_norm=",
    "gradient_error": "gradient_error=True",
    "reference_mismatch": "reference=",
    "clip_bound": "max_grad_norm=",
    "step_equivalence": "step_equivalence=True",
}


def _check_expected_checks(o: TargetOptions) -> None:
    """An expectation may name only checks the target runs: one it never runs would be an
    XPASS after the whole search."""
    for mode, e in o.expect.items():
        missing = sorted((e.checks or frozenset()) - set(o.check_names))
        if missing:
            how = _ENABLED_BY.get(missing[0])
            raise InvalidArgument(
                f"expect[{mode!r}] names {missing[0]!r}, a check this target does not run"
                + (f" (it needs {how})" if how else "")
                + f"; it runs {', '.join(o.check_names)}"
            )


def _function_checks(o: FunctionOptions) -> tuple[str, ...]:
    checks = ["exception", "floating_output", "finite_forward", "finite_gradients"]
    if o.max_output is not None:
        checks.append("output_bound")
    if o.max_grad_norm is not None:
        checks.append("gradient_bound")
    checks.append("error")
    if o.gradient_error:
        checks.append("gradient_error")
    if o.reference is not None:
        checks.append("reference_mismatch")
    return tuple(checks)


FAULT_NAMES: tuple[str, ...] = (
    "none",
    "nan_batch",
    "inf_batch",
    "loss_spike",
    "inf_grad",
    "large_activations",
    "zero_grad",
    "batch_of_one",
)


@dataclass(frozen=True)
class StepOptions(TargetOptions):
    """What a training-step target can be told, on top of :class:`TargetOptions`."""

    faults: tuple[str, ...] = option(
        FAULT_NAMES[1:], f"faults to inject, among {', '.join(FAULT_NAMES)}"
    )
    warmup_steps: int = option(8, "clean steps before the faults")
    max_steps: int = option(6, "longest drawn schedule of faulty and clean steps")
    step_equivalence: bool = option(
        True, "compare each step with one float64 step of the same optimizer on the whole batch"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        faults = (self.faults,) if isinstance(self.faults, str) else tuple(self.faults)
        v.check_choices("faults", faults, FAULT_NAMES)
        object.__setattr__(self, "faults", faults)
        v.check_int("warmup_steps", self.warmup_steps, minimum=0)
        v.check_int("max_steps", self.max_steps, minimum=1)
        v.check_bool("step_equivalence", self.step_equivalence)
        checks = ["exception", "finite_state", "skip_is_noop", "progress"]
        if self.max_grad_norm is not None:
            checks.append("clip_bound")
        if self.step_equivalence:
            checks.append("step_equivalence")
        object.__setattr__(self, "check_names", tuple(checks))
        _check_expected_checks(self)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class RunOptions:
    """What a run is told: which modes, how long a search, how many workers."""

    modes: tuple[str, ...] = option(
        MODE_NAMES,
        f"comma-separated precision modes. Default: {','.join(MODE_NAMES)}",
        cli="--modes",
    )
    device: str = option(
        "cpu", "device; auto picks cuda when present. Default: cpu", cli="--device"
    )
    profile: str | None = option(
        None, "Hypothesis settings profile. Default: ci when $CI is set, else dev", cli="--profile"
    )
    max_examples: int | None = option(
        None, "examples per target and mode (overrides the profile)", cli="--max-examples"
    )
    seed: int | None = option(None, "seed for a reproducible search. Default: none", cli="--seed")
    jobs: int | None = option(
        None,
        "worker processes running target × mode jobs. Default: one per core "
        "(0: everything in this process, with no deadline)",
        cli="--jobs",
    )
    scheduler: str | None = option(
        None,
        "a Dask distributed scheduler (tcp://host:8786) to send jobs to; also $STRESS_SCHEDULER",
        cli="--scheduler",
    )
    strict: bool = option(
        False, "limits and unverified references fail the run too", cli="--strict"
    )
    deadline: float | None = option(
        None,
        f"seconds an example may run before its worker is stopped. Default: {DEFAULT_DEADLINE:g}",
        cli="--deadline",
    )
    memory_budget: float | None = option(
        None,
        "GiB the tensors of one example may take; larger examples are not run. "
        "Default: a quarter of this machine's memory per worker",
        cli="--memory-budget",
    )
    shrink: str | None = option(
        None,
        "which failures are shrunk: all, or unexpected (a failure the target expects is "
        "reported as first found). Default: unexpected in the ci profile, all otherwise",
        cli="--shrink",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "modes", _check_modes("modes", self.modes))
        v.check_choice("device", self.device, DEVICES)
        if self.profile is not None:
            v.check_choice("profile", self.profile, PROFILE_NAMES)
        v.check_int("max_examples", self.max_examples, minimum=1, allow_none=True)
        v.check_int("seed", self.seed, minimum=-(2**63), allow_none=True)
        v.check_int("jobs", self.jobs, minimum=0, allow_none=True)
        v.check_type("scheduler", self.scheduler, str, allow_none=True)
        v.check_bool("strict", self.strict)
        v.check_number("deadline", self.deadline, positive=True, allow_none=True)
        v.check_number("memory_budget", self.memory_budget, positive=True, allow_none=True)
        if self.shrink is not None:
            v.check_choice("shrink", self.shrink, SHRINK_CHOICES)

    @property
    def workers(self) -> int:
        return self.jobs if self.jobs is not None else _cpu_count()

    @property
    def resolved_profile(self) -> str:
        return self.profile or ("ci" if os.environ.get("CI") else "dev")

    @property
    def shrink_expected(self) -> bool:
        """Whether failures the target expects are shrunk too."""
        return self.shrink == "all" if self.shrink else self.resolved_profile != "ci"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def options_doc(*classes: type) -> str:
    """A reST table of options, for docstrings: name, default and meaning."""
    rows = []
    for cls in classes:
        for f in fields(cls):
            if not f.init:
                continue
            factory: Any = f.default_factory
            default = f.default if f.default is not MISSING else factory()
            rows.append((f.name, repr(default), f.metadata.get("doc", "")))
    width = max(len(r[0]) for r in rows)
    lines = [f"    ``{n}``{' ' * (width - len(n))}  {doc} (default ``{d}``)" for n, d, doc in rows]
    return "\n".join(lines)
