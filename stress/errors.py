"""The exception tree: everything torch-stress raises on purpose is a ``StressError``."""

from __future__ import annotations


class StressError(Exception):
    """Base class of every error torch-stress raises on purpose."""


class InvalidArgument(StressError, ValueError):
    """An argument was outside what is accepted; the message names it, its value and the choices."""


class ReportError(StressError):
    """A report file could not be read: missing, corrupt, or of an unknown schema version."""
