"""One job: a target in one mode, searched, judged and turned into a result and findings.

A job runs wherever the engine puts it — this process, a forked worker, a Dask worker — and
everything it needs travels with it: the target (or where to import it from), the mode and
the run's settings.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.modes import Mode
from ..core.options import DEFAULT_DEADLINE
from ..core.outcomes import Outcome, Status, verdict
from ..report.model import Finding, Result
from .profiles import search_settings
from .search import Exploration, Failure, Recorded, explore
from .session import Session
from .targets import BaseTarget, Target

__all__ = ["Job", "JobSettings", "execute"]

# checks whose failure has an op to blame; the others are logic invariants of training steps
DIAGNOSED = frozenset(
    {
        "finite_forward",
        "finite_gradients",
        "output_bound",
        "gradient_bound",
        "error",
        "gradient_error",
        "reference_mismatch",
        "finite_state",
    }
)

Heartbeat = Callable[[str], None]


@dataclass(frozen=True)
class JobSettings:
    """What every job of a run shares."""

    profile: str
    max_examples: int | None = None
    seed: int | None = None
    deadline: float = DEFAULT_DEADLINE
    strict: bool = False
    memory_budget: int | None = None  # bytes of one example's tensors
    stability: bool = True
    shrink_expected: bool = True  # False: a failure the target expects is reported as first found


@dataclass
class Job:
    """A target in one mode."""

    index: int
    target: BaseTarget | None
    mode: Mode
    settings: JobSettings
    source: str | None = None  # where a worker that cannot share memory imports the target from
    name: str = ""

    def __post_init__(self) -> None:
        if self.target is not None:
            self.source = self.source or self.target.source
            self.name = self.name or self.target.name

    @property
    def key(self) -> str:
        return f"{self.name}[{self.mode.label}]"

    @property
    def deadline(self) -> float:
        own = self.target.options.deadline if self.target is not None else None
        return own or self.settings.deadline

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for another machine: the target travels as its source, not as an object."""
        state = dict(self.__dict__)
        if state["source"] is not None:
            state["target"] = None
        return state

    def resolve(self) -> BaseTarget:
        if self.target is None:
            from .discovery import load_target

            assert self.source is not None
            self.target = load_target(self.source, self.name)
        return self.target


def execute(job: Job, heartbeat: Heartbeat | None = None) -> tuple[Result, list[Finding]]:
    """Search one target in one mode and judge what was found."""
    target, mode, settings = job.resolve(), job.mode, job.settings
    expect = target.expectation(mode)
    strict = target.options.strict if target.options.strict is not None else settings.strict
    result = Result(
        target.name,
        mode.label,
        mode.device,
        Status.PASSED,
        expect,
        source=target.source,
        options=target.options.to_json(),
    )
    skip = mode.unavailable_reason()
    if skip:
        result.status, result.reason = Status.SKIPPED, skip
        return result, []
    start = time.perf_counter()
    session = target.session(mode)
    result.checks = list(session.check_names)
    cfg = search_settings(
        settings.profile, target.options.max_examples or settings.max_examples, settings.seed
    )
    beat = _example_beat(session, heartbeat)
    found = explore(
        session,
        job.key,
        cfg,
        settings.seed,
        budget=settings.memory_budget,
        heartbeat=beat,
        expected=None if settings.shrink_expected else expect.expects_failure_of,
    )
    result.examples, result.shrinking, result.over_budget = (
        found.generated,
        found.shrinking,
        found.over_budget,
    )
    result.worst, result.grad_norms = found.worst, found.grad_norms
    if heartbeat is not None:
        heartbeat("judging the findings (diagnosis)")
    findings = [_finding(target, session, f, expect) for f in found.failures]
    failed = {f.violation.kind for f in found.failures}
    findings += [  # a limit of a kind that also failed outright adds nothing
        _limit_finding(target, session, r, expect)
        for kind, r in found.limits.items()
        if kind not in failed
    ]
    findings.sort(key=lambda f: (f.outcome != Outcome.FAIL, _order(session, f.check)))
    result.seconds = time.perf_counter() - start
    result.checks_failed = list(
        dict.fromkeys(f.check for f in findings if f.outcome == Outcome.FAIL)
    )
    if found.unsupported and not any(f.outcome == Outcome.FAIL for f in findings):
        result.status, result.reason = (
            Status.UNSUPPORTED,
            f"unsupported in {mode.label}: {found.unsupported}",
        )
        return result, findings
    unverified = _unverified(found)
    result.status, detail = verdict(
        expect, [(f.check, f.outcome) for f in findings], strict=strict, unverified=unverified
    )
    result.reason = target.reason if result.status == Status.XFAILED else detail
    if result.status == Status.XPASSED:
        result.reason = f"{detail} in {found.generated} examples ({target.reason})"
    if settings.stability and isinstance(target, Target):
        if heartbeat is not None:
            heartbeat("stability map")
        from ..analysis.stability import stability_map

        started = time.perf_counter()
        result.stability = stability_map(target, mode)
        result.stability_seconds = time.perf_counter() - started
    return result, findings


def _example_beat(session: Session, heartbeat: Heartbeat | None) -> Callable[[Any], None] | None:
    if heartbeat is None:
        return None
    counter = [0]

    def beat(example: Any) -> None:
        counter[0] += 1
        described = ", ".join(f"{k}={v}" for k, v in session.describe(example).items())
        heartbeat(f"example {counter[0]}: {described}")

    return beat


def _order(session: Session, check: str) -> int:
    names = list(session.check_names)
    return names.index(check) if check in names else len(names)


def _unverified(found: Exploration) -> str | None:
    if not found.unverified_examples:
        return None
    total = max(found.generated, found.unverified_examples)
    return f"{found.unverified} ({found.unverified_examples} of {total} examples)"


def _finding(target: BaseTarget, session: Session, failure: Failure, expect: Any) -> Finding:
    """A shrunk failure, replayed once more: its message with the conditioning explained, and
    (for a numeric check) the op that produced the first bad value."""
    v = failure.violation
    message, diagnosis = v.message, None
    if failure.outcome == Outcome.FAIL and failure.example is not None and v.check != "exception":
        replayed: dict[str, Any] = {}

        def replay() -> None:
            replayed["obs"] = session.run(failure.example, explain=True)

        if v.check in DIAGNOSED:
            from ..analysis.diagnosis import diagnose

            tolerance = session.mode.tolerance(target.options.tolerances)
            found = diagnose(
                replay,
                session.mode,
                tolerance,
                wrong_but_finite=v.check in ("error", "gradient_error"),
                forward_only=v.check in ("finite_forward", "error", "output_bound"),
            )
            diagnosis = found.to_dict() if found is not None else None
        else:
            with contextlib.suppress(Exception):  # the replay may raise like the search did
                replay()
        obs = replayed.get("obs")
        same = [x for x in (obs.violations if obs else []) if x.kind == v.kind]
        if same:
            message = same[0].message
    inferred = getattr(target, "inferred", ())
    if v.check == "exception" and inferred:
        message += (
            f" — the strategies of {', '.join(inferred)} were inferred from their names; if these "
            "shapes do not fit the function, give them with --arg NAME=STRATEGY"
        )
    return Finding(
        target=target.name,
        mode=session.mode.label,
        check=v.check,
        key=v.key,
        outcome=failure.outcome,
        message=message,
        counterexample=session.describe(failure.example) if failure.example is not None else {},
        figures=failure.figures,
        expected=failure.outcome == Outcome.FAIL and expect.expects_failure_of(v.check),
        reproduce_blob=failure.blob,
        traceback=failure.tb,
        inputs=failure.inputs,
        source=target.source,
        diagnosis=diagnosis,
        shrunk=failure.shrunk,
    )


def _limit_finding(
    target: BaseTarget, session: Session, recorded: Recorded, expect: Any
) -> Finding:
    """A limit as first seen (not shrunk: the search went on past it)."""
    v = recorded.violation
    return Finding(
        target=target.name,
        mode=session.mode.label,
        check=v.check,
        key=v.key,
        outcome=Outcome.LIMIT,
        message=v.message,
        counterexample=session.describe(recorded.example),
        figures=recorded.figures,
        expected=expect.kind == "limit" and expect.covers(v.check),
        inputs=recorded.inputs,
        source=target.source,
        shrunk=False,
    )
