"""The Hypothesis search over one target in one mode, and the follow-up searches after it.

Each example is checked; every failing output or gradient is a violation, and the first one
(in check order) that is a real failure is raised as an exception type of its own — one type per
check and output — which Hypothesis shrinks to a minimal counterexample. Limits (the dtype's
fault) are recorded, never raised: the search goes on past them. A follow-up search then looks
past the failures already found for a failure of another check — one search per failing check;
another output failing a check already found is noted as first found on the way, so a check
failing on many outputs (the gradient of every parameter) cannot use up the searches before
another check is found — with its full budget of examples, where
Hypothesis's own multiple-bug search stops soon after the first bug and after ten seconds of
wall clock — so an expected, flaky or early failure cannot hide a second one, and the result
does not depend on the machine's speed. ``hypothesis.target()`` steers every search toward large
outputs, large gradients and large errors in units of eps, until the search has a failure.
When told which failures the target expects (the ci profile), a search notes an expected
failure as first found (once replayed, to tell a flaky one) and goes on, so one search finds
every expected check within its budget; only a failure nobody expected is raised and shrunk,
and a smaller example that fails an expected check cannot stand in for it.
"""

from __future__ import annotations

import math
import re
import sys
import traceback
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import given, settings
from hypothesis.errors import Flaky
from hypothesis.statistics import collector

from ..core.checks import Violation
from ..core.modes import Mode
from ..core.outcomes import Outcome
from .session import Observation, Session, UserError

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

__all__ = ["Exploration", "Failure", "Unsupported", "explore"]

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
    """Search, then search again past the failures found so far, until one search raises none.

    A failure of a check not failing before is raised and shrunk, which ends the search; any
    other (another output of a check already failing, or with ``expected``, whether the target
    expects a failure of a check, an expected one) is noted as first found and the search goes
    on. A search that raised nothing has run its whole budget: nothing is left to search for.
    """
    found = Exploration()
    for k in range(len(session.check_names) + 1):  # each search raises a new failing check
        seen = {f.violation.kind for f in found.failures}
        raised = _search(session, key, k, cfg, seed, seen, found, budget, heartbeat, expected)
        if not raised or found.unsupported:
            break
    return found


def _search(
    session: Session,
    key: str,
    k: int,
    cfg: settings,
    seed: int | None,
    seen: set[tuple[str, str]],
    found: Exploration,
    budget: int | None,
    heartbeat: Callable[[Any], None] | None,
    expected: Callable[[str], bool] | None,
) -> bool:
    """One Hypothesis search past the failures already ``seen``; whether it raised one."""
    mode = session.mode
    found.searches += 1
    failed = [False]  # once a failure is raised, only shrinking is left to do
    masked = set(seen)  # (check, output) failures not raised nor noted again
    failing = {check for check, _ in seen}
    noted: list[Failure] = []
    replayed: list[Any] = [None, set()]  # the last example replayed, and what it failed again

    def fail(v: Violation, example: Any, inputs: Any, figures: Any, tb: str | None = None) -> None:
        """Raise a failure of a new check nobody expected; note any other as first found."""
        if v.check not in failing and (expected is None or not expected(v.check)):
            failed[0] = True
            raise failure_type(v.kind)(v, example, inputs, figures, tb) from None
        if failed[0]:
            return  # a shrinking step's example is not one the search found
        first = failure_type(v.kind)(v, example, inputs, figures, tb)
        first.shrunk = False
        if replayed[0] is not example:  # one replay serves every failure the example shows
            replayed[:] = [example, _failing_again(session, example)]
        if v.kind not in replayed[1]:
            first.outcome = Outcome.FLAKY
        noted.append(first)
        masked.add(v.kind)

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
            if v.kind not in masked:
                tb = "".join(traceback.format_exception(e.error))
                fail(v, example, getattr(session, "last_inputs", {}), {}, tb)
            return
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
            elif v.kind not in masked:
                fail(v, example, obs.inputs, {**obs.figures, **v.figures})

    test.__name__ = test.__qualname__ = re.sub(r"\W", "_", key)
    if seed is None and cfg.derandomize:
        # Hypothesis would derive the seed from this closure's source, so any edit to the
        # harness would reshuffle every search: the target and mode decide instead
        seed = zlib.crc32(key.encode())

    def count(stats: Any) -> None:
        for phase, bucket in stats.items():
            if isinstance(bucket, dict) and "test-cases" in bucket:
                n = len(bucket["test-cases"])
                if phase.startswith(("shrink", "explain")):
                    found.shrinking += n
                else:
                    found.generated += n

    wrapped: Any = given(session.strategy)(test)
    digest = f"{key}#{k}" if k else key  # one example-database key per target × mode × search
    wrapped.hypothesis.inner_test._hypothesis_internal_add_digest = digest.encode()
    wrapped = settings(cfg)(wrapped)
    if seed is not None:
        wrapped = hypothesis.seed(seed)(wrapped)
    raised: list[Failure] = []
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
                raised.append(leaf)
            elif isinstance(leaf, Unsupported):
                found.unsupported = str(leaf)
            elif not flaky:
                raise
    found.failures += noted + raised
    return bool(raised)


def _failing_again(session: Session, example: Any) -> set[tuple[str, str]]:
    """The failures an example shows when run once more: Hypothesis replays only the failures
    it is raised, so this is what tells a noted failure that does not reproduce (flaky)."""
    try:
        obs = session.run(example)
    except UserError as e:
        return {("exception", type(e.error).__name__)}
    return {x.kind for x in obs.violations if x.outcome == Outcome.FAIL}
