"""Option definitions shared by the ``stress`` CLI and the pytest plugin.

This module imports neither torch nor Hypothesis, so pytest can load the plugin cheaply. The
CLI adds the options as ``--modes`` …, the plugin as ``--stress-modes`` … in its own group.
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEVICES",
    "MODE_NAMES",
    "PROFILE_NAMES",
    "SEARCH_OPTIONS",
    "add_search_options",
    "in_shard",
    "shard",
]

MODE_NAMES: tuple[str, ...] = ("fp32", "fp16", "bf16", "amp-fp16", "amp-bf16")
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
PROFILE_NAMES: tuple[str, ...] = ("ci", "dev", "thorough")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
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
    """Whether target ``name`` belongs to shard ``which``: a stable hash, the same on every machine."""
    return which is None or zlib.crc32(name.encode()) % which[1] == which[0]


# (name without prefix, argparse keyword arguments); "Default: %(default)s" ends each help
SEARCH_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "modes",
        dict(
            type=modes,
            default=list(MODE_NAMES),
            help=f"comma-separated precision modes. Default: {','.join(MODE_NAMES)}",
        ),
    ),
    (
        "device",
        dict(
            choices=DEVICES,
            default="cpu",
            help="device; auto picks cuda when present. Default: %(default)s",
        ),
    ),
    (
        "profile",
        dict(
            choices=PROFILE_NAMES,
            default=None,
            help="Hypothesis settings profile. Default: ci when $CI is set, else dev",
        ),
    ),
    (
        "max-examples",
        dict(
            type=positive_int,
            default=None,
            help="examples per target and mode (overrides the profile)",
        ),
    ),
    ("seed", dict(type=int, default=None, help="seed for a reproducible search. Default: none")),
    (
        "shard",
        dict(
            type=shard,
            default=None,
            help="run only shard i of n (i/n, counted from 0), for CI matrix jobs",
        ),
    ),
]


def add_search_options(add: Callable[..., Any], prefix: str = "--", dest_prefix: str = "") -> None:
    """Add the shared options through ``add`` (``parser.add_argument`` or pytest's ``group.addoption``)."""
    for name, kwargs in SEARCH_OPTIONS:
        add(prefix + name, dest=dest_prefix + name.replace("-", "_"), **kwargs)
