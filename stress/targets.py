"""Describing a function under test: the ``@stress.target`` decorator and its plain-call form."""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .checks import DEFAULT_ERROR_FLOOR, Check, default_checks
from .errors import InvalidArgument
from .modes import MODE_NAMES, Mode
from .strategies import ArgumentStrategy, as_argument_strategy, resolve_dims

__all__ = ["BaseTarget", "Target", "target"]

EXPECTATIONS = ("pass", "fail", "may-fail")


class BaseTarget(ABC):
    """What the runner needs of any kind of target: a name, expectations, and a session per mode."""

    name: str
    named: bool  # the name was given, so discovery keeps it instead of module.attribute
    expect: dict[str, str]
    reason: str | None
    source: str | None  # "path/to/file.py:attr" or "module:attr", for replay

    def expected(self, mode_name: str) -> str:
        return self.expect.get(mode_name, "pass")

    @abstractmethod
    def session(self, mode: Mode) -> Any:
        """An object with ``strategy``, ``inputs``, ``run(example)`` and ``describe(example)``."""


AnyTarget = BaseTarget


@dataclass
class Target(BaseTarget):
    """A function or ``nn.Module`` with a strategy per argument and an expectation per mode.

    ``expect`` is ``"pass"``, ``"fail"``, ``"may-fail"``, or a mapping from mode name to one of
    them; modes it does not name are expected to pass. An expected failure (``"fail"``) that the
    search does not find is itself a failure of the run, like a strict xfail; ``"may-fail"`` is
    the non-strict kind, for a real failure too rare to be found on every run.
    """

    fn: Callable[..., Any]
    arguments: dict[str, ArgumentStrategy]
    name: str
    expect: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    dims: dict[str, tuple[int, int]] = field(default_factory=dict)
    wrt: tuple[str, ...] | None = None
    tolerances: dict[str, float] = field(default_factory=dict)
    error_floor: float = DEFAULT_ERROR_FLOOR
    max_output: float | None = None
    max_grad_norm: float | None = None
    gradient_error: bool = True
    named: bool = False
    source: str | None = None

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.fn, updated=())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"Target({self.name}: {args})"

    @property
    def module(self) -> torch.nn.Module | None:
        return self.fn if isinstance(self.fn, torch.nn.Module) else None

    def session(self, mode: Mode) -> Any:
        """How the runner drives this target in ``mode`` (an ``evaluation.FunctionSession``)."""
        from .evaluation import FunctionSession

        return FunctionSession(self, mode)

    def checks(self) -> list[Check]:
        return default_checks(
            tolerances=self.tolerances,
            error_floor=self.error_floor,
            max_output=self.max_output,
            max_grad_norm=self.max_grad_norm,
            gradient_error=self.gradient_error,
        )


def _normalize_expect(expect: str | Mapping[str, str] | None) -> dict[str, str]:
    if expect is None:
        return {}
    if isinstance(expect, str):
        if expect not in EXPECTATIONS:
            raise InvalidArgument(
                f"expect={expect!r}: accepted values are 'pass', 'fail', 'may-fail' or a mapping mode -> those"
            )
        return dict.fromkeys(MODE_NAMES, expect)
    if not isinstance(expect, Mapping):
        raise InvalidArgument(
            f"expect={expect!r}: must be 'pass', 'fail', 'may-fail' or a mapping mode -> one of those"
        )
    for k, v in expect.items():
        if k not in MODE_NAMES:
            raise InvalidArgument(
                f"expect names mode {k!r}; accepted modes are {', '.join(MODE_NAMES)}"
            )
        if v not in EXPECTATIONS:
            raise InvalidArgument(
                f"expect[{k!r}]={v!r}: accepted values are 'pass', 'fail' and 'may-fail'"
            )
    return dict(expect)


def default_name(fn: Callable[..., Any]) -> str:
    """``Class.method`` or ``function``, without the ``<locals>`` of functions defined in functions."""
    qualname = getattr(fn, "__qualname__", None) or type(fn).__name__
    return qualname.rsplit("<locals>.", 1)[-1]


def importable_source(fn: Callable[..., Any]) -> str | None:
    """``module:qualname`` when the function can be imported again (not ``__main__``, not local)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    call = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        return dict(inspect.signature(call).parameters)
    except (TypeError, ValueError):
        return {}


def make_target(
    fn: Callable[..., Any],
    strategies: Mapping[str, Any],
    *,
    name: str | None = None,
    expect: str | Mapping[str, str] | None = None,
    reason: str | None = None,
    dims: Mapping[str, tuple[int, int]] | None = None,
    wrt: tuple[str, ...] | list[str] | None = None,
    tolerances: Mapping[str, float] | None = None,
    error_floor: float = DEFAULT_ERROR_FLOOR,
    max_output: float | None = None,
    max_grad_norm: float | None = None,
    gradient_error: bool = True,
) -> Target:
    """Validate everything once, up front, and build a :class:`Target`."""
    if not callable(fn):
        raise InvalidArgument(f"target: expected a function or nn.Module, got {fn!r}")
    label = name or default_name(fn)
    params = parameters(fn)
    varkw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in strategies if params and not varkw and k not in params]
    if unknown:
        raise InvalidArgument(
            f"{label}: strategies given for {unknown}, which are not parameters; parameters are {list(params)}"
        )
    missing = [
        k
        for k, p in params.items()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and k not in strategies
    ]
    if missing:
        raise InvalidArgument(
            f"{label}: no strategy for required parameter(s) {missing}; give e.g. {missing[0]}=st.tensors(('B', 'D'))"
        )
    arguments = {k: as_argument_strategy(k, v) for k, v in strategies.items()}
    resolve_dims(arguments, dims)  # validates dims against the names in use
    if wrt is not None:
        wrt = tuple(wrt)
        bad = [w for w in wrt if w not in arguments]
        if bad:
            raise InvalidArgument(
                f"{label}: wrt={wrt!r} names {bad}, which are not arguments; arguments are {list(arguments)}"
            )
    tolerances = dict(tolerances or {})
    for k, v in tolerances.items():
        if k not in MODE_NAMES:
            raise InvalidArgument(
                f"tolerances names mode {k!r}; accepted modes are {', '.join(MODE_NAMES)}"
            )
        if not isinstance(v, (int, float)) or not v > 0:
            raise InvalidArgument(f"tolerances[{k!r}]={v!r}: must be a positive number")
    for arg, v in (  # type: ignore[assignment]
        ("error_floor", error_floor),
        ("max_output", max_output),
        ("max_grad_norm", max_grad_norm),
    ):
        if v is not None and not (isinstance(v, (int, float)) and v > 0):
            raise InvalidArgument(f"{arg}={v!r}: must be a positive number")
    return Target(
        fn=fn,
        arguments=arguments,
        name=label,
        expect=_normalize_expect(expect),
        reason=reason,
        dims=dict(dims or {}),
        wrt=wrt,
        tolerances=tolerances,
        error_floor=error_floor,
        max_output=max_output,
        max_grad_norm=max_grad_norm,
        gradient_error=gradient_error,
        named=name is not None,
        source=importable_source(fn),
    )


def target(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    expect: str | Mapping[str, str] | None = None,
    reason: str | None = None,
    dims: Mapping[str, tuple[int, int]] | None = None,
    wrt: tuple[str, ...] | list[str] | None = None,
    tolerances: Mapping[str, float] | None = None,
    error_floor: float = DEFAULT_ERROR_FLOOR,
    max_output: float | None = None,
    max_grad_norm: float | None = None,
    gradient_error: bool = True,
    **strategies: Any,
) -> Any:
    """Declare a target: ``@stress.target(x=st.logits(("B", "C")), expect={"fp16": "fail"})``.

    Called with a function or module first (``stress.target(model, x=...)``) it returns the
    :class:`Target` directly; used as a decorator it replaces the function with its Target,
    which is still callable. ``stress run PATH`` discovers Targets in modules.
    """
    options = dict(
        name=name,
        expect=expect,
        reason=reason,
        dims=dims,
        wrt=wrt,
        tolerances=tolerances,
        error_floor=error_floor,
        max_output=max_output,
        max_grad_norm=max_grad_norm,
        gradient_error=gradient_error,
    )
    if expect is not None and expect != "pass" and not reason:
        raise InvalidArgument(f"expect={expect!r} needs reason='...': say in one line why it fails")
    if fn is not None:
        return make_target(fn, strategies, **options)  # type: ignore[arg-type]
    return lambda f: make_target(f, strategies, **options)  # type: ignore[arg-type]
