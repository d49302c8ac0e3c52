"""Describing a function under test: the ``@stress.target`` decorator and its plain-call form."""

from __future__ import annotations

import difflib
import functools
import inspect
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..core.modes import Mode
from ..core.options import FunctionOptions, RunOptions, TargetOptions, options_doc
from ..core.outcomes import Expect, expectation_for
from ..core.strategies import ArgumentStrategy, as_argument_strategy, resolve_dims
from ..errors import InvalidArgument

if TYPE_CHECKING:
    from .session import Session

__all__ = ["BaseTarget", "Target", "make_target", "target"]


class BaseTarget(ABC):
    """What the engine needs of any kind of target: a name, options, and a session per mode."""

    name: str
    named: bool  # the name was given, so discovery keeps it instead of module.attribute
    source: str | None  # "path/to/file.py:attr" or "module:attr": where a worker imports it from
    options: TargetOptions

    @property
    def expect(self) -> Mapping[str, Expect]:
        return self.options.expect

    @property
    def reason(self) -> str | None:
        return self.options.reason

    def expectation(self, mode: Mode) -> Expect:
        return expectation_for(self.options.expect, mode.name, mode.device)

    def runs_in(self, mode: Mode) -> bool:
        return (
            self.options.modes is None
            or mode.label in self.options.modes
            or mode.name in self.options.modes
        )

    @abstractmethod
    def session(self, mode: Mode) -> Session:
        """How the engine drives this target in ``mode``."""


@dataclass
class Target(BaseTarget):
    """A function or ``nn.Module`` with a strategy per argument, and its options."""

    fn: Callable[..., Any]
    arguments: dict[str, ArgumentStrategy]
    options: FunctionOptions
    name: str
    named: bool = False
    source: str | None = None
    inferred: tuple[str, ...] = ()  # arguments whose strategies were guessed from their names

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

    def session(self, mode: Mode) -> Session:
        from .evaluation import FunctionSession

        return FunctionSession(self, mode)


def default_name(fn: Callable[..., Any]) -> str:
    """``Class.method`` or ``function``, without the ``<locals>`` of functions defined in functions."""
    qualname = getattr(fn, "__qualname__", None) or type(fn).__name__
    return qualname.rsplit("<locals>.", 1)[-1]


def importable_source(fn: Callable[..., Any]) -> str | None:
    """Where the function can be imported from again (not ``__main__``, not a local function):
    the absolute path of a top-level module's file, so a replay works from any directory, or
    ``module:qualname`` for a module inside a package."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    if "." not in module and path and path.endswith(".py") and "site-packages" not in path:
        return f"{os.path.abspath(path)}:{qualname}"
    return f"{module}:{qualname}"


def parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    call = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        return dict(inspect.signature(call).parameters)
    except (TypeError, ValueError):
        return {}


def make_target(
    fn: Callable[..., Any], strategies: Mapping[str, Any], options: FunctionOptions
) -> Target:
    """Validate the strategies against ``fn``'s parameters and the options, and build a Target."""
    if not callable(fn):
        raise InvalidArgument(f"target: expected a function or nn.Module, got {fn!r}")
    label = options.name or default_name(fn)
    params = parameters(fn)
    varkw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in strategies if params and not varkw and k not in params]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, FunctionOptions.names(), n=1)
            if k in RunOptions.names():
                hints.append(
                    f"{k} is an option of a run (stress.run, stress.fuzz), not of a target"
                )
            elif close:
                hints.append(f"{k} looks like the option {close[0]}")
        raise InvalidArgument(
            f"{label}: strategies given for {unknown}, which are not parameters; parameters are "
            f"{list(params)}" + (f" ({'; '.join(hints)})" if hints else "")
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
    resolve_dims(arguments, options.dims)  # the names in dims must be in use
    if options.reference is not None:
        from .references import resolve_reference

        resolve_reference(options.reference, label, list(arguments))  # fails now, not in a worker
    if options.wrt is not None:
        weights = [n for n, _ in fn.named_parameters()] if isinstance(fn, torch.nn.Module) else []
        bad = [w for w in options.wrt if w not in arguments and w not in weights]
        if bad:
            also = f" or parameters {weights}" if weights else ""
            raise InvalidArgument(
                f"{label}: wrt={options.wrt!r} names {bad}, which are not arguments{also}; "
                f"arguments are {list(arguments)}"
            )
    return Target(
        fn=fn,
        arguments=arguments,
        options=options,
        name=label,
        named=options.name is not None,
        source=importable_source(fn),
    )


def target(fn: Callable[..., Any] | None = None, /, **kwargs: Any) -> Any:
    """Declare a target: ``@stress.target(x=st.logits(("B", "C")), expect={"fp16": "finite_forward"})``.

    Keyword arguments are options (below) or, for every other name, the strategy — or a
    constant, or a plain Hypothesis strategy — of the parameter of that name. Called with a
    function or module first (``stress.target(model, x=...)``) it returns the :class:`Target`;
    used as a decorator it replaces the function with its Target, which is still callable.
    ``stress run PATH`` discovers Targets in modules.

    Options:

    {options}
    """
    given, strategies = FunctionOptions.split(kwargs)
    options = FunctionOptions(**given)
    if fn is not None:
        return make_target(fn, strategies, options)
    return lambda f: make_target(f, strategies, options)


target.__doc__ = (target.__doc__ or "").replace("{options}", options_doc(FunctionOptions).strip())
