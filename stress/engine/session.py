"""What the search needs of a target in one mode: a strategy of examples and a way to check one.

Function targets (:class:`~stress.engine.evaluation.FunctionSession`) and training steps
(:class:`~stress.steps.session.StepSession`) both implement :class:`Session`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from hypothesis.strategies import SearchStrategy

from ..core.checks import Violation
from ..core.modes import Mode

__all__ = ["Observation", "Session", "UserError"]


class UserError(Exception):
    """The target itself raised (forward or backward): a finding, not a harness error."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


@dataclass
class Observation:
    """What checking one example found."""

    figures: dict[str, float]
    violations: list[Violation]  # in check order, every output and gradient that failed
    inputs: dict[str, Any]  # the values the target saw, on the CPU, kept for a finding
    reference_note: str | None = None  # why float64 could not be trusted on this example
    notes: dict[str, str] = field(default_factory=dict)  # explanations added on replay, by check


class Session(Protocol):
    """One target in one mode, as the search drives it."""

    mode: Mode
    strategy: SearchStrategy[Any]
    check_names: tuple[str, ...]

    def run(self, example: Any, *, explain: bool = False) -> Observation:
        """Check one example; ``explain`` adds what is costly to say (conditioning) to messages.
        Exceptions of the target itself are raised as :class:`UserError`."""

    def describe(self, example: Any) -> dict[str, str]:
        """The example as readable calls, argument by argument."""

    def memory(self, example: Any) -> int:
        """Bytes the example's tensors take at their widest, before it is materialized."""
