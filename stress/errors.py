"""The exception tree: everything torch-stress raises on purpose is a ``StressError``."""

from __future__ import annotations


class StressError(Exception):
    """Base class of every error torch-stress raises on purpose."""


class InvalidArgument(StressError, ValueError):
    """An argument was outside what is accepted; the message names it, its value and the choices."""


class ReportError(StressError):
    """A report file could not be read: missing, corrupt, or of an unknown schema version."""


def check_choice(name: str, value: object, choices: tuple[str, ...] | list[str]) -> None:
    """Raise ``InvalidArgument`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise InvalidArgument(f"Unknown {name}={value!r}; accepted values are {accepted}")
