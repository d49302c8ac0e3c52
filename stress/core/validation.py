"""Argument validation, in one place: every check raises ``InvalidArgument`` naming the argument,
the value it was given and what is accepted, e.g. ``GuardedStep(window=0): must be an int >= 1``.

This module imports nothing heavy, so the CLI, the pytest plugin and ``GuardedStep`` share it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from ..errors import InvalidArgument

__all__ = [
    "check_bool",
    "check_callable",
    "check_choice",
    "check_choices",
    "check_dims",
    "check_int",
    "check_number",
    "check_range",
    "check_type",
]


def short_repr(value: object) -> str:
    """A value for a one-line message: a tensor by dtype and shape, anything else by its repr,
    or by its type when that repr is long or spans lines."""
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    if dtype is not None and shape is not None:
        return f"a {dtype} tensor of shape {tuple(shape)}"
    text = repr(value)
    if len(text) <= 60 and "\n" not in text:
        return text
    return f"<{type(value).__name__} object>"


def _where(name: str, value: object, context: str | None) -> str:
    return f"{context}({name}={value!r})" if context else f"{name}={value!r}"


def check_choice(
    name: str, value: object, choices: Collection[Any], *, context: str | None = None
) -> None:
    """``value`` is one of ``choices``."""
    if value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        where = f"{context}: " if context else ""
        raise InvalidArgument(f"{where}Unknown {name}={value!r}; accepted values are {accepted}")


def check_choices(
    name: str, values: Iterable[object], choices: Collection[Any], *, context: str | None = None
) -> None:
    """Every item of ``values`` is one of ``choices``; the message lists the unknown ones."""
    unknown = [v for v in values if v not in choices]
    if unknown:
        accepted = ", ".join(repr(c) for c in choices)
        raise InvalidArgument(
            f"{_where(name, values, context)} names {unknown}; accepted values are {accepted}"
        )


def check_type(
    name: str,
    value: object,
    types: type | tuple[type, ...],
    *,
    context: str | None = None,
    allow_none: bool = False,
) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, types):
        names = (
            " or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        raise InvalidArgument(
            f"{_where(name, value, context)}: must be {'None or ' if allow_none else ''}a {names}, "
            f"not {type(value).__name__}"
        )


def check_bool(name: str, value: object, *, context: str | None = None) -> None:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{_where(name, value, context)}: must be True or False")


def check_number(
    name: str,
    value: object,
    *,
    positive: bool = False,
    allow_zero: bool = False,
    allow_none: bool = False,
    context: str | None = None,
) -> None:
    """A finite real number (not a bool); ``positive`` asks for > 0, or >= 0 with ``allow_zero``."""
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and positive:
        assert isinstance(value, (int, float))
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        want = (
            ("a number >= 0" if allow_zero else "a positive number")
            if positive
            else "a finite number"
        )
        raise InvalidArgument(
            f"{_where(name, value, context)}: must be {want}{' or None' if allow_none else ''}"
        )


def check_int(
    name: str,
    value: object,
    *,
    minimum: int = 0,
    allow_none: bool = False,
    context: str | None = None,
) -> None:
    """An int (not a bool) of at least ``minimum``."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument(
            f"{_where(name, value, context)}: must be an int >= {minimum}{' or None' if allow_none else ''}"
        )


def check_range(context: str, min_value: object, max_value: object) -> None:
    """Optional finite bounds with ``min_value <= max_value``."""
    check_number("min_value", min_value, allow_none=True, context=context)
    check_number("max_value", max_value, allow_none=True, context=context)
    if min_value is not None and max_value is not None and min_value > max_value:  # type: ignore[operator]
        raise InvalidArgument(
            f"{context}: cannot have min_value={min_value!r} > max_value={max_value!r}"
        )


def check_callable(name: str, value: object, *, context: str | None = None) -> None:
    if not callable(value):
        raise InvalidArgument(f"{_where(name, value, context)}: must be callable")


def check_mapping(
    name: str,
    value: object,
    keys: Collection[str],
    check_value: Callable[[str, object], None],
    *,
    context: str | None = None,
) -> dict[str, Any]:
    """A mapping whose keys are among ``keys`` and whose values pass ``check_value(label, v)``."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{_where(name, value, context)}: must be a mapping")
    for k, v in value.items():
        if k not in keys:
            raise InvalidArgument(
                f"{name} names {k!r}; accepted keys are {', '.join(map(str, keys))}"
            )
        check_value(f"{name}[{k!r}]", v)
    return dict(value)


def check_dims(dims: object) -> dict[str, tuple[int, int]]:
    """``dims={"B": (1, 64)}``: a size range (or one size) per dimension name."""
    if not isinstance(dims, Mapping):
        raise InvalidArgument(f"dims={dims!r}: must be a mapping like {{'B': (1, 64)}}")
    out = {}
    for n, rng in dims.items():
        if isinstance(rng, int) and not isinstance(rng, bool):
            rng = (rng, rng)
        if isinstance(rng, list):
            rng = tuple(rng)
        ok = (
            isinstance(rng, tuple)
            and len(rng) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in rng)
            and 0 <= rng[0] <= rng[1]
        )
        if not ok:
            raise InvalidArgument(
                f"dims[{n!r}]={rng!r}: must be an int or a (min, max) pair of ints, 0 <= min <= max"
            )
        out[str(n)] = (int(rng[0]), int(rng[1]))
    return out
