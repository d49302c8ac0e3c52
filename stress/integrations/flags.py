"""Command-line flags, built from the option classes: the ``stress`` CLI adds them as ``--modes``
…, the pytest plugin as ``--stress-modes`` … in its own group.

This module imports neither torch nor Hypothesis, so pytest can load the plugin cheaply.
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from ..core.options import (
    DEVICES,
    MODE_NAMES,
    PROFILE_NAMES,
    SHRINK_CHOICES,
    FunctionOptions,
    RunOptions,
)

__all__ = ["add_run_flags", "add_target_flags", "in_shard", "shard", "target_options"]


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def modes(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    for m in names:
        if m.partition("@")[0] not in MODE_NAMES:
            raise argparse.ArgumentTypeError(
                f"unknown mode {m!r}; accepted modes are {', '.join(MODE_NAMES)}"
            )
    if not names:
        raise argparse.ArgumentTypeError("give at least one mode")
    return names


def shard(text: str) -> tuple[int, int]:
    """``"1/4"`` → ``(1, 4)``: the second of four shards (counted from 0)."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(
            f"shard must be i/n with 0 <= i < n, e.g. 0/4; got {text!r}"
        )
    return i, n


def in_shard(name: str, which: tuple[int, int] | None) -> bool:
    """Whether ``name`` belongs to shard ``which``: a stable hash, the same on every machine."""
    return which is None or zlib.crc32(name.encode()) % which[1] == which[0]


def _tolerance(text: str) -> tuple[str, float]:
    mode, sep, value = text.partition("=")
    if not sep or mode not in MODE_NAMES:
        raise argparse.ArgumentTypeError(
            f"expected MODE=TOLERANCE with MODE among {', '.join(MODE_NAMES)}, e.g. fp16=3e-2; got {text!r}"
        )
    return mode, _positive(value)


# how each option is typed on a command line
_ARGUMENTS: dict[str, dict[str, Any]] = {
    "modes": dict(type=modes, default=list(MODE_NAMES)),
    "device": dict(choices=DEVICES, default="cpu"),
    "profile": dict(choices=PROFILE_NAMES, default=None),
    "max_examples": dict(type=_count(1), default=None),
    "seed": dict(type=int, default=None),
    "jobs": dict(type=_count(0), default=None),
    "scheduler": dict(default=None, metavar="ADDRESS"),
    "strict": dict(action="store_true", default=False),
    "deadline": dict(type=_positive, default=None, metavar="SECONDS"),
    "memory_budget": dict(type=_positive, default=None, metavar="GIB"),
    "shrink": dict(choices=SHRINK_CHOICES, default=None),
    "max_grad_norm": dict(type=_positive, default=None),
    "wrt": dict(action="append", default=None, metavar="ARG"),
    "error_floor": dict(type=_positive, default=None),
    "max_output": dict(type=_positive, default=None),
    "backward_error": dict(action="store_true", default=None),
    "reference": dict(default=None, metavar="module:function|torch"),
    "reference_dtype": dict(default=None, metavar="DTYPE"),
}


def _add(add: Callable[..., Any], cls: type, prefix: str, dest_prefix: str) -> None:
    for f in fields(cls):
        cli = f.metadata.get("cli")
        if not cli or not f.init:
            continue
        flag = prefix + cli.removeprefix("--")
        names = ["-j", flag] if f.name == "jobs" and prefix == "--" else [flag]
        add(*names, dest=dest_prefix + f.name, help=f.metadata["doc"], **_ARGUMENTS[f.name])


def add_run_flags(add: Callable[..., Any], prefix: str = "--", dest_prefix: str = "") -> None:
    """The run's flags through ``add`` (``parser.add_argument`` or pytest's ``group.addoption``),
    plus ``--shard`` for CI matrix jobs."""
    _add(add, RunOptions, prefix, dest_prefix)
    add(
        prefix + "shard",
        dest=dest_prefix + "shard",
        type=shard,
        default=None,
        help="run only shard i of n (i/n, counted from 0), for CI matrix jobs",
    )


def add_target_flags(add: Callable[..., Any]) -> None:
    """The flags of one function's options, for ``stress fuzz``."""
    _add(add, FunctionOptions, "--", "")
    add(
        "--tolerance",
        dest="tolerances",
        type=_tolerance,
        action="append",
        default=None,
        metavar="MODE=TOL",
        help="the output tolerance of one mode, e.g. fp16=3e-2 (repeatable)",
    )


def target_options(args: argparse.Namespace) -> dict[str, Any]:
    """The function options set on the command line, as keyword arguments."""
    given: dict[str, Any] = {}
    for f in fields(FunctionOptions):
        if f.metadata.get("cli") and getattr(args, f.name, None) is not None:
            given[f.name] = getattr(args, f.name)
    if "wrt" in given:
        given["wrt"] = tuple(given["wrt"])
    if getattr(args, "tolerances", None):
        given["tolerances"] = dict(args.tolerances)
    return given
