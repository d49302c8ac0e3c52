"""The Hypothesis search over one target in one mode, and the follow-up searches after it.

Each example is checked; every failing output or gradient is a violation, and the first one
(in check order) that is a real failure is raised as an exception type of its own — one type per
check and output — which Hypothesis shrinks to a minimal counterexample. Limits (the dtype's
fault) are recorded, never raised: the search goes on past them. A follow-up search then masks
the failures already found and looks for another — with its full budget of examples, where
Hypothesis's own multiple-bug search stops soon after the first bug and after ten seconds of
wall clock — so an expected, flaky or early failure cannot hide a second one, and the result
does not depend on the machine's speed. ``hypothesis.target()`` steers every search toward large
outputs, large gradients and large errors in units of eps, until the search has a failure.
When told which failures the target expects (the ci profile), a search runs without shrinking
and runs again, the same seeded search with shrinking, only for a failure nobody expected.
"""

from __future__ import annotations

import math
import random
import re
import sys
import traceback
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import Phase, given, settings
from hypothesis.errors import Flaky
from hypothesis.statistics import collector

from ..core.checks import Violation
from ..core.modes import Mode
from ..core.outcomes import Outcome
from .session import Observation, Session, UserError

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

__all__ = ["Exploration", "Failure", "Unsupported", "explore"]

# searches per target × mode at most: the first, and follow-ups while new failures appear
MAX_SEARCHES = 3
_UNSUPPORTED = re.compile(
    r"not implemented for '(Half|BFloat16)'|does not support (half|bfloat16|float16)", re.I
)
_GRAD_NORM_SAMPLES = 2000


class Unsupported(Exception):
    """An op has no kernel for this dtype on this device: neither a finding nor a crash."""


class Failure(Exception):
    """A real failure raised inside the search; one subclass per check and output."""

    def __init__(
        self,
        violation: Violation,
        example: Any,
        inputs: Mapping[str, Any],
        figures: Mapping[str, float],
        tb: str | None = None,
    ) -> None:
        super().__init__(violation.message)
        self.violation, self.example, self.inputs = violation, example, dict(inputs)
        self.figures, self.tb = dict(figures), tb
        self.blob: str | None = None
        self.outcome = Outcome.FAIL
        self.shrunk = True


_FAILURE_TYPES: dict[tuple[str, str], type[Failure]] = {}


def failure_type(kind: tuple[str, str]) -> type[Failure]:
    """A distinct exception type per (check, output), so Hypothesis tells the failures apart."""
    if kind not in _FAILURE_TYPES:
        check, key = kind
        name = "".join(p.title() for p in check.split("_")) + "Failure"
        suffix = re.sub(r"\W+", "_", key).strip("_")
        _FAILURE_TYPES[kind] = type(
            f"{name}_{suffix}" if suffix else name, (Failure,), {"__module__": __name__}
        )
    return _FAILURE_TYPES[kind]


@dataclass
class Recorded:
    """A limit seen during the search: the first example that showed it."""

    violation: Violation
    example: Any
    inputs: dict[str, Any]
    figures: dict[str, float]


@dataclass
class Exploration:
    """Everything the searches of one target × mode saw."""

    generated: int = 0  # examples drawn by the search phases
    shrinking: int = 0  # examples run while shrinking failures
    over_budget: int = 0  # examples not run: their tensors exceed the memory budget
    worst: dict[str, float] = field(default_factory=dict)
    grad_norms: list[float] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    limits: dict[tuple[str, str], Recorded] = field(default_factory=dict)
    unverified: str | None = None  # the first reason a float64 reference was missing
    unverified_examples: int = 0
    unsupported: str | None = None
    searches: int = 0

    def observe(self, obs: Observation) -> None:
        figures = obs.figures
        if "grad_norm" in figures and len(self.grad_norms) < _GRAD_NORM_SAMPLES:
            self.grad_norms.append(figures["grad_norm"])
        for k, x in figures.items():
            # NaN (the norm of a NaN gradient) is the worst figure there is, never replaced
            old = self.worst.get(k, -math.inf)
            self.worst[k] = x if math.isnan(x) or x > old else old
        if obs.reference_note:
            self.unverified_examples += 1
            self.unverified = self.unverified or obs.reference_note


def _log10(x: float) -> float:
    if math.isnan(x) or x >= 1e300:
        return 300.0
    return math.log10(max(x, 1e-300))


_STEERING = {
    "max_abs_output": "log10 |output|",
    "grad_norm": "log10 grad norm",
    "error_eps": "log10 error/eps",
}
_BLOB = re.compile(r"@reproduce_failure\((.*?)\)")


def _steer(figures: Mapping[str, float]) -> None:
    """Feed the search the signals that climb toward failures."""
    for key, label in _STEERING.items():
        if key in figures:
            hypothesis.target(_log10(figures[key]), label=label)


def _blob(exc: BaseException) -> str | None:
    for note in getattr(exc, "__notes__", []):
        m = _BLOB.search(note)
        if m:
            return f"@reproduce_failure({m.group(1)})"
    return None


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def _is_unsupported(e: BaseException, mode: Mode) -> bool:
    return (
        mode.compute_dtype.itemsize < 4
        and isinstance(e, (NotImplementedError, RuntimeError))
        and _UNSUPPORTED.search(str(e)) is not None
    )


def explore(
    session: Session,
    key: str,
    cfg: settings,
    seed: int | None,
    *,
    budget: int | None = None,
    heartbeat: Callable[[Any], None] | None = None,
    expected: Callable[[str], bool] | None = None,
) -> Exploration:
    """Search, then search again with the failures found so far masked, until nothing new.

    With ``expected`` (whether the target expects a failure of a check), an expected failure is
    reported as first found and only the others are shrunk.
    """
    found = Exploration()
    mask: set[tuple[str, str]] = set()
    for k in range(MAX_SEARCHES):
        new = _search(session, key, k, cfg, seed, mask, found, budget, heartbeat, expected)
        if found.unsupported or not new:
            break
        mask |= new
    return found


def _search(
    session: Session,
    key: str,
    k: int,
    cfg: settings,
    seed: int | None,
    mask: set[tuple[str, str]],
    found: Exploration,
    budget: int | None,
    heartbeat: Callable[[Any], None] | None,
    expected: Callable[[str], bool] | None,
) -> set[tuple[str, str]]:
    """One Hypothesis search; returns the kinds of failure it found."""
    mode = session.mode
    found.searches += 1
    failed = [False]  # once a failure is raised, only shrinking is left to do

    def test(example: Any) -> None:
        if heartbeat is not None:
            heartbeat(example)
        if budget is not None and session.memory(example) > budget:
            found.over_budget += 1
            hypothesis.reject()
        try:
            obs = session.run(example)
        except UserError as e:
            if _is_unsupported(e.error, mode):
                raise Unsupported(
                    f"{type(e.error).__name__}: {str(e.error).splitlines()[0]}"
                ) from None
            v = Violation("exception", str(e), type(e.error).__name__)
            if v.kind in mask:
                return
            failed[0] = True
            tb = "".join(traceback.format_exception(e.error))
            raise failure_type(v.kind)(
                v, example, getattr(session, "last_inputs", {}), {}, tb
            ) from None
        found.observe(obs)
        if not failed[0]:
            # Hypothesis's hill climbing would go on past the failure, which it will not report
            _steer(obs.figures)
        for v in obs.violations:
            if v.outcome == Outcome.LIMIT:
                if v.kind not in found.limits:
                    found.limits[v.kind] = Recorded(
                        v, example, obs.inputs, {**obs.figures, **v.figures}
                    )
            elif v.kind not in mask:
                failed[0] = True
                raise failure_type(v.kind)(v, example, obs.inputs, {**obs.figures, **v.figures})

    test.__name__ = test.__qualname__ = re.sub(r"\W", "_", key)
    if seed is None and cfg.derandomize:
        # Hypothesis would derive the seed from this closure's source, so any edit to the
        # harness would reshuffle every search: the target and mode decide instead
        seed = zlib.crc32(key.encode())
    elif seed is None and expected is not None:
        seed = random.SystemRandom().getrandbits(32)  # a second attempt repeats the same search

    def count(stats: Any) -> None:
        for phase, bucket in stats.items():
            if isinstance(bucket, dict) and "test-cases" in bucket:
                n = len(bucket["test-cases"])
                if phase.startswith(("shrink", "explain")):
                    found.shrinking += n
                else:
                    found.generated += n

    def attempt(phases: tuple[Phase, ...]) -> list[Failure]:
        failed[0] = False
        wrapped: Any = given(session.strategy)(test)
        digest = f"{key}#{k}" if k else key  # one example-database key per target × mode × search
        wrapped.hypothesis.inner_test._hypothesis_internal_add_digest = digest.encode()
        wrapped = settings(cfg, phases=phases)(wrapped)
        if seed is not None:
            wrapped = hypothesis.seed(seed)(wrapped)
        failures: list[Failure] = []
        try:
            with collector.with_value(count):  # type: ignore[arg-type] # typed as None
                wrapped()
        except (Failure, Unsupported, Flaky, BaseExceptionGroup) as exc:
            flaky = isinstance(exc, Flaky)
            for leaf in _leaves(exc):
                if isinstance(leaf, Failure):
                    leaf.blob = _blob(leaf) or _blob(exc)
                    if flaky:
                        leaf.outcome = Outcome.FLAKY
                    failures.append(leaf)
                elif isinstance(leaf, Unsupported):
                    found.unsupported = str(leaf)
                elif not flaky:
                    raise
        return failures

    phases = tuple(cfg.phases)
    if expected is None or Phase.shrink not in phases:
        failures = attempt(phases)
    else:
        # the failure is first found without shrinking; one nobody expected is found again (the
        # same seeded search) and shrunk, an expected one is reported as found
        failures = attempt(tuple(p for p in phases if p is not Phase.shrink))
        for f in failures:
            f.shrunk = False
        if any(f.outcome == Outcome.FAIL and not expected(f.violation.check) for f in failures):
            failures = attempt(phases)
    found.failures += failures
    return {f.violation.kind for f in failures}
