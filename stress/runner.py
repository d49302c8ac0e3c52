"""The Hypothesis engine: targets × modes → results and findings.

For each target and mode, one Hypothesis search runs over drawn examples. Each example is
materialized, rounded to the mode, evaluated in the mode (forward and backward, under autocast
for amp modes) and in float64 on the same rounded values, then checked. A violated check raises
an exception type of its own, so Hypothesis tracks each check as a distinct bug and shrinks
each to a minimal counterexample. ``hypothesis.target()`` steers the search toward large
outputs, large gradients and large errors.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import hypothesis
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky
from hypothesis.strategies import SearchStrategy

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

from .checks import CHECKS, Violation
from .diagnosis import diagnose
from .errors import InvalidArgument, check_choice
from .events import LISTENERS
from .modes import MODE_NAMES, Mode, resolve_modes
from .options import PROFILE_NAMES
from .report.model import (
    FAILED,
    PASSED,
    SKIPPED,
    UNSUPPORTED,
    XFAILED,
    XPASSED,
    Finding,
    Report,
    Result,
    environment,
)
from .report.storage import write_report
from .stability import stability_map
from .targets import AnyTarget, Target, make_target

__all__ = ["PROFILES", "fuzz", "run"]

_COMMON: dict[str, Any] = dict(
    deadline=None,
    verbosity=Verbosity.quiet,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
_DB_DIR = ".stress/examples"
PROFILES: dict[str, dict[str, Any]] = {
    # reproducible and side-effect free: no example database, fixed derandomized search
    "ci": dict(max_examples=30, derandomize=True, database=None),
    # the local loop: failing examples are saved and replayed first on the next run
    "dev": dict(max_examples=100, database=None),
    # nightly: a long targeted search
    "thorough": dict(max_examples=1000, database=None),
}
assert tuple(PROFILES) == PROFILE_NAMES
for _name, _opts in PROFILES.items():
    settings.register_profile(f"stress-{_name}", **_COMMON, **_opts)


def search_settings(profile: str, max_examples: int | None, seed: int | None) -> settings:
    """The Hypothesis settings of a search: the profile, then the overrides."""
    check_choice("profile", profile, tuple(PROFILES))
    opts: dict[str, Any] = {}
    if max_examples is not None:
        if not isinstance(max_examples, int) or max_examples < 1:
            raise InvalidArgument(f"max_examples={max_examples!r}: must be an int >= 1")
        opts["max_examples"] = max_examples
    if profile != "ci":
        opts["database"] = DirectoryBasedExampleDatabase(
            os.environ.get("STRESS_EXAMPLE_DB", _DB_DIR)
        )
    if seed is not None:
        opts["derandomize"] = False
    return settings(settings.get_profile(f"stress-{profile}"), **opts)


def default_profile() -> str:
    return "ci" if os.environ.get("CI") else "dev"


# ------------------------------------------------------------------------ evaluation

_UNSUPPORTED = re.compile(
    r"not implemented for '(Half|BFloat16)'|does not support (half|bfloat16|float16)", re.I
)


class _Unsupported(Exception):
    """An op has no kernel for this dtype on this device: neither a finding nor a crash."""


class Failure(Exception):
    """Raised inside the search for a violated check; one subclass per check."""

    def __init__(
        self,
        violation: Violation,
        counterexample: dict[str, str],
        inputs: dict[str, Any],
        figures: dict[str, float],
        tb: str | None = None,
    ):
        super().__init__(violation.message)
        self.violation, self.counterexample, self.inputs = violation, counterexample, inputs
        self.figures, self.tb = figures, tb
        self.blob: str | None = None
        self.example: Any = None  # the shrunk example, replayed once more for the diagnosis


_FAILURE_TYPES: dict[str, type[Failure]] = {}


def _failure_type(check: str) -> type[Failure]:
    """A distinct exception type per check, so Hypothesis shrinks each check's failure separately."""
    if check not in _FAILURE_TYPES:
        name = "".join(p.title() for p in check.split("_")) + "Failure"
        _FAILURE_TYPES[check] = type(name, (Failure,), {"__module__": __name__})
    return _FAILURE_TYPES[check]


# ----------------------------------------------------------------------------- search


@dataclass
class _Stats:
    examples: int = 0
    worst: dict[str, float] = field(default_factory=dict)
    grad_norms: list[float] = field(default_factory=list)

    def add(self, figures: Mapping[str, float]) -> None:
        self.examples += 1
        if "grad_norm" in figures and len(self.grad_norms) < 2000:
            self.grad_norms.append(figures["grad_norm"])
        for k, v in figures.items():
            if not math.isnan(v):
                self.worst[k] = max(self.worst.get(k, -math.inf), v)


def _log10(v: float) -> float:
    if math.isnan(v) or v >= 1e300:
        return 300.0
    return math.log10(max(v, 1e-300))


_STEERING = {
    "max_abs_output": "log10 |output|",
    "grad_norm": "log10 grad norm",
    "error_eps": "log10 error/eps",
}


def _steer(figures: Mapping[str, float]) -> None:
    """Feed the search the signals that climb toward failures."""
    for key, label in _STEERING.items():
        if key in figures:
            hypothesis.target(_log10(figures[key]), label=label)


_BLOB = re.compile(r"@reproduce_failure\((.*?)\)")


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


class Session(Protocol):
    """One target in one mode, as the search drives it (see ``evaluation.FunctionSession``)."""

    strategy: SearchStrategy[Any]
    inputs: dict[str, Any]  # the values of the example being run, kept for a finding
    check_names: list[str]  # the checks it runs, in order

    def run(self, example: Any) -> tuple[dict[str, float], Violation | None]: ...

    def describe(self, example: Any) -> dict[str, str]: ...


def _is_unsupported(e: Exception, mode: Mode) -> bool:
    return (
        mode.compute_dtype != torch.float32
        and isinstance(e, (NotImplementedError, RuntimeError))
        and _UNSUPPORTED.search(str(e)) is not None
    )


def _search(
    target: AnyTarget, session: Session, mode: Mode, cfg: settings, seed: int | None
) -> tuple[_Stats, list[Failure], str | None]:
    """Run one Hypothesis search; return statistics, shrunk failures, and an unsupported-op reason."""
    stats = _Stats()

    def test(example: Any) -> None:
        try:
            figures, violation = session.run(example)
        except Exception as e:  # noqa: BLE001 - whatever the user's code raises is a finding
            if _is_unsupported(e, mode):
                raise _Unsupported(f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
            tb = "".join(traceback.format_exception(e))
            v = Violation("exception", f"{type(e).__name__}: {e}")
            failure = _failure_type("exception")(
                v, session.describe(example), session.inputs, {}, tb
            )
            failure.example = example
            raise failure from None
        stats.add(figures)
        _steer(figures)
        if violation is not None:
            failure = _failure_type(violation.check)(
                violation, session.describe(example), session.inputs, figures
            )
            failure.example = example
            raise failure

    test.__name__ = test.__qualname__ = re.sub(r"\W", "_", f"{target.name}__{mode.label}")
    wrapped: Any = given(session.strategy)(test)
    # one example-database key per target × mode
    key = f"{target.name}[{mode.label}]".encode()
    wrapped.hypothesis.inner_test._hypothesis_internal_add_digest = key
    wrapped = cfg(wrapped)
    if seed is None and cfg.derandomize:
        # Hypothesis would derive the seed from this closure's source, so any edit to the
        # harness (even reformatting) would reshuffle every search; the target decides instead
        seed = zlib.crc32(key)
    if seed is not None:
        wrapped = hypothesis.seed(seed)(wrapped)
    try:
        wrapped()
    except (Failure, _Unsupported, Flaky, BaseExceptionGroup) as exc:
        failures, unsupported = [], None
        for leaf in _leaves(exc):
            if isinstance(leaf, Failure):
                leaf.blob = _blob(leaf)
                failures.append(leaf)
            elif isinstance(leaf, _Unsupported):
                unsupported = str(leaf)
            elif isinstance(leaf, Flaky):
                v = Violation(
                    "exception", f"flaky: the failure did not reproduce on replay: {leaf}"
                )
                failures.append(_failure_type("exception")(v, {}, {}, {}))
            else:
                raise
        return stats, failures, unsupported
    return stats, [], None


# every function check, and the finite-state invariant of training steps
NUMERIC_CHECKS = frozenset(CHECKS) | {"finite_state"}


def _diagnose(session: Session, failure: Failure, mode: Mode) -> dict[str, Any] | None:
    """Replay the shrunk counterexample under the op tracer (never during the search)."""
    if failure.example is None or failure.violation.check not in NUMERIC_CHECKS:
        return None  # logic invariants (accumulation, skip, progress, clipping) have no op to blame
    wrong_but_finite = failure.violation.check in ("error", "gradient_error")
    found = diagnose(
        lambda: session.run(failure.example),
        mode,
        mode.tolerance(),
        wrong_but_finite=wrong_but_finite,
    )
    return found.to_dict() if found is not None else None


def run_one(
    target: AnyTarget, mode: Mode, cfg: settings, seed: int | None
) -> tuple[Result, list[Finding]]:
    """One target in one mode: its result row and its findings."""
    expected = target.expected(mode.name)
    result = Result(target.name, mode.label, mode.device, PASSED, expected)
    skip = mode.unavailable_reason()
    if skip:
        result.status, result.reason = SKIPPED, skip
        return result, []
    start = time.perf_counter()
    session: Session = target.session(mode)
    stats, failures, unsupported = _search(target, session, mode, cfg, seed)
    result.seconds = time.perf_counter() - start
    result.examples, result.worst, result.grad_norms = stats.examples, stats.worst, stats.grad_norms
    result.checks, result.source = ["exception", *session.check_names], target.source
    if isinstance(target, Target) and not unsupported:
        result.stability = stability_map(target, mode)
    findings = [
        Finding(
            target=target.name,
            mode=mode.label,
            check=f.violation.check,
            message=f.violation.message,
            counterexample=f.counterexample,
            figures={**f.figures, **f.violation.figures},
            expected=expected != "pass",
            reproduce_blob=f.blob,
            traceback=f.tb,
            inputs=f.inputs,
            source=target.source,
            diagnosis=_diagnose(session, f, mode),
        )
        for f in failures
    ]
    findings.sort(
        key=lambda f: CHECKS.index(f.check) if f.check in CHECKS else len(CHECKS)
    )  # step checks last
    result.checks_failed = [f.check for f in findings]
    if unsupported and not findings:
        result.status, result.reason = UNSUPPORTED, f"unsupported in {mode.label}: {unsupported}"
    elif findings:
        result.status = FAILED if expected == "pass" else XFAILED
        result.reason = None if expected == "pass" else target.reason
    elif expected == "fail":
        result.status = XPASSED
        result.reason = f"expected to fail ({target.reason}) but no failure was found in {stats.examples} examples"
    return result, findings


def run(
    targets: Iterable[AnyTarget],
    *,
    modes: Sequence[str | Mode] | str = MODE_NAMES,
    device: str = "cpu",
    profile: str | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    on_result: Callable[[Result, list[Finding]], None] | None = None,
) -> Report:
    """Run every target in every mode and return the report.

    With ``report_dir`` the report is rewritten atomically after each target × mode, so an
    interrupted run (Ctrl-C) still leaves a valid partial report there.
    """
    targets = list(targets)
    resolved = resolve_modes(modes, device)
    profile = profile or default_profile()
    cfg = search_settings(profile, max_examples, seed)
    report = Report(
        settings={
            "profile": profile,
            "max_examples": cfg.max_examples,
            "seed": seed,
            "modes": [m.label for m in resolved],
            "device": device,
            "targets": [t.name for t in targets],
        },
        environment=environment(),
    )
    out = Path(report_dir, report.run_id) if report_dir is not None else None
    try:
        for t in targets:
            for m in resolved:
                result, findings = run_one(t, m, cfg, seed)
                report.results.append(result)
                report.findings.extend(findings)
                if out is not None:
                    write_report(report, out, html=False)
                if on_result is not None:
                    on_result(result, findings)
                for listener in LISTENERS:
                    listener(result, findings)
        report.complete = True
    finally:
        if out is not None:
            write_report(report, out)
            report.settings["report_path"] = str(out / "report.json")
    return report


def fuzz(
    fn: Callable[..., Any],
    *,
    modes: Sequence[str | Mode] | str = MODE_NAMES,
    device: str = "cpu",
    profile: str | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    dims: Mapping[str, tuple[int, int]] | None = None,
    wrt: Sequence[str] | None = None,
    tolerances: Mapping[str, float] | None = None,
    expect: str | Mapping[str, str] | None = None,
    reason: str | None = None,
    max_output: float | None = None,
    max_grad_norm: float | None = None,
    **strategies: Any,
) -> Report:
    """Fuzz one function or module in a few lines: ``stress.fuzz(loss, x=st.logits(("B", "C")))``.

    Keyword arguments other than the options above are strategies (or constants) for the
    function's parameters. Returns a :class:`Report`; ``report.ok`` is False when a check failed.
    """
    t = make_target(
        fn,
        strategies,
        dims=dims,
        wrt=tuple(wrt) if wrt is not None else None,
        tolerances=tolerances,
        expect=expect,
        reason=reason,
        max_output=max_output,
        max_grad_norm=max_grad_norm,
    )
    return run(
        [t],
        modes=modes,
        device=device,
        profile=profile,
        max_examples=max_examples,
        seed=seed,
        report_dir=report_dir,
    )
