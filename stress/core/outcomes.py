"""What a run can conclude: the names of the checks, the outcome of a finding, the status of a
target × mode, and the expectations a target declares.

An outcome says whose fault a failure is:

============ ==============================================================================
``fail``     the function could do better on these rounded inputs: a stable implementation
             exists
``limit``    the dtype forces it: the float64 result or gradient is beyond the dtype's range
             or below its resolution, or sits on a discontinuity (a kink, a tie, a clamp) that
             rounding crosses. Shown, not failing, unless the run is strict
``flaky``    the failure did not reproduce when replayed; shown, never failing by default
============ ==============================================================================

This module imports nothing heavy: the CLI and the pytest plugin use it before torch loads.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import InvalidArgument

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, Enum):
        def __str__(self) -> str:
            return str(self.value)


__all__ = [
    "ANY_CHECK",
    "CHECK_NAMES",
    "FUNCTION_CHECKS",
    "STEP_CHECKS",
    "Expect",
    "Outcome",
    "Status",
    "expectation_for",
    "parse_expectations",
    "verdict",
]

# Every check, in the order an example is checked; the first failing one names the example.
FUNCTION_CHECKS: tuple[str, ...] = (
    "exception",
    "floating_output",
    "finite_forward",
    "finite_gradients",
    "output_bound",
    "gradient_bound",
    "error",
    "gradient_error",
    "reference_mismatch",
)
STEP_CHECKS: tuple[str, ...] = (
    "exception",
    "finite_state",
    "skip_is_noop",
    "clip_bound",
    "progress",
    "step_equivalence",
)
CHECK_NAMES: tuple[str, ...] = tuple(dict.fromkeys(FUNCTION_CHECKS + STEP_CHECKS))
# "fail" without naming checks: any check but an exception (which must be named to be expected)
ANY_CHECK = frozenset(CHECK_NAMES) - {"exception"}


class Outcome(StrEnum):
    """Whose fault one finding is."""

    FAIL = "fail"
    LIMIT = "limit"
    FLAKY = "flaky"


class Status(StrEnum):
    """The verdict on one target in one mode."""

    PASSED = "passed"
    FAILED = "failed"  # an unexpected failure, or a different check than the one expected
    XFAILED = "xfailed"  # the expected failure was found
    XPASSED = "xpassed"  # an expected failure was not found
    LIMIT = "limit"  # only representability limits or discontinuities: the dtype's fault
    FLAKY = "flaky"  # only failures that did not reproduce
    UNVERIFIED = "unverified"  # no trustworthy float64 reference: the error checks could not run
    UNSUPPORTED = "unsupported"  # an op has no kernel for this dtype on this device
    SKIPPED = "skipped"  # the mode cannot run here (no GPU)
    TIMEOUT = "timeout"  # an example ran past its deadline: the worker was stopped
    CRASH = "crash"  # the worker died (a signal, out of memory)
    ERROR = "error"  # torch-stress itself failed: never a finding of the target

    @property
    def fails_run(self) -> bool:
        return self in _FAILING


_FAILING = frozenset({Status.FAILED, Status.XPASSED, Status.TIMEOUT, Status.CRASH, Status.ERROR})

_KINDS = ("pass", "fail", "may-fail", "limit")


@dataclass(frozen=True)
class Expect:
    """What a target is expected to do in one mode.

    ``Expect.fail("finite_forward")`` — the search must find that check failing (and no other
    check may fail); ``Expect.fail()`` accepts any check but ``exception``.
    ``Expect.may_fail("error", rate=0.35)`` — a real failure found in only part of the runs; the
    measured rate (the fraction of seeds whose 1000-example search finds it) is recorded.
    ``Expect.limit("finite_forward")`` — the dtype cannot represent the result: a limit outcome
    is expected there. Strings are shorthands: ``"pass"``, ``"fail"``, ``"may-fail"``,
    ``"limit"``, or a check name (``"error"``) for ``Expect.fail("error")``.
    """

    kind: str = "pass"
    checks: frozenset[str] | None = None  # None: any check but an exception
    rate: float | None = None

    @classmethod
    def fail(cls, *checks: str) -> Expect:
        return cls._make("fail", checks)

    @classmethod
    def may_fail(cls, *checks: str, rate: float | None = None) -> Expect:
        if rate is not None and not (isinstance(rate, (int, float)) and 0 < rate <= 1):
            raise InvalidArgument(
                f"Expect.may_fail(rate={rate!r}): must be a fraction in (0, 1] — a failure "
                "that is never found is no expectation"
            )
        return cls._make("may-fail", checks, rate)

    @classmethod
    def limit(cls, *checks: str) -> Expect:
        return cls._make("limit", checks)

    @classmethod
    def _make(cls, kind: str, checks: Iterable[str], rate: float | None = None) -> Expect:
        names = frozenset(checks)
        unknown = sorted(names - set(CHECK_NAMES))
        if unknown:
            raise InvalidArgument(
                f"Expect.{kind.replace('-', '_')}{tuple(checks)!r} names unknown checks {unknown}; "
                f"checks are {', '.join(CHECK_NAMES)}"
            )
        return cls(kind, names or None, rate)

    @classmethod
    def parse(cls, value: object, label: str = "expect") -> Expect:
        """An ``Expect``, a kind, a check name, or a collection of check names."""
        if isinstance(value, Expect):
            return value
        if isinstance(value, str):
            if value in _KINDS:
                return cls(value)
            if value in CHECK_NAMES:
                return cls.fail(value)
        elif (
            isinstance(value, (tuple, list, set, frozenset))
            and value
            and all(isinstance(v, str) and v in CHECK_NAMES for v in value)
        ):
            return cls.fail(*value)
        raise InvalidArgument(
            f"{label}={value!r}: accepted values are 'pass', 'fail', 'may-fail', 'limit', a check name "
            f"({', '.join(CHECK_NAMES)}), a tuple of check names, or stress.Expect.fail/may_fail/limit(...)"
        )

    def covers(self, check: str) -> bool:
        return check in (self.checks if self.checks is not None else ANY_CHECK)

    @property
    def expects_failure(self) -> bool:
        return self.kind != "pass"

    def expects_failure_of(self, check: str) -> bool:
        """Whether a failure of ``check`` is the one this expectation declares (fail, may-fail)."""
        return self.kind in ("fail", "may-fail") and self.covers(check)

    def __str__(self) -> str:
        if self.kind == "pass":
            return "pass"
        what = "/".join(sorted(self.checks)) if self.checks else "any check"
        rate = f", found in {self.rate:.0%} of seeds" if self.rate is not None else ""
        return f"{self.kind} ({what}{rate})"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "checks": sorted(self.checks) if self.checks is not None else None,
            "rate": self.rate,
        }

    @classmethod
    def from_json(cls, data: Any) -> Expect:
        if isinstance(data, str):  # reports of schema version 1 kept a bare kind
            return cls(data)
        checks = data.get("checks")
        return cls(
            data["kind"], frozenset(checks) if checks is not None else None, data.get("rate")
        )


def parse_expectations(
    expect: object, modes: Iterable[str], devices: Iterable[str] = ("cpu", "cuda")
) -> dict[str, Expect]:
    """``expect=`` as given to a target: one value for every mode, or a mapping whose keys are
    mode names (every device) or ``device:mode`` (one device), e.g. ``{"cuda:fp16": "error"}``."""
    mode_names = tuple(modes)
    if expect is None:
        return {}
    if not isinstance(expect, Mapping):
        e = Expect.parse(expect)
        return dict.fromkeys(mode_names, e) if e.kind != "pass" else {}
    out: dict[str, Expect] = {}
    for key, value in expect.items():
        device, sep, name = str(key).rpartition(":")
        if name not in mode_names or (sep and device not in devices):
            accepted = ", ".join(mode_names)
            raise InvalidArgument(
                f"expect names {key!r}; keys are mode names ({accepted}) or device:mode "
                f"(devices: {', '.join(devices)})"
            )
        out[str(key)] = Expect.parse(value, f"expect[{key!r}]")
    return out


def expectation_for(expect: Mapping[str, Expect], mode: str, device: str) -> Expect:
    """The expectation of one mode on one device: ``device:mode`` first, then ``mode``."""
    return expect.get(f"{device}:{mode}") or expect.get(mode) or Expect()


def verdict(
    expect: Expect,
    found: Iterable[tuple[str, Outcome]],
    *,
    strict: bool = False,
    unverified: str | None = None,
) -> tuple[Status, str | None]:
    """The status of a target × mode from its expectation and the (check, outcome) of its findings.

    A different check failing than the one expected fails the run; an expected failure that was
    not found too (``may-fail`` excepted). Limits, an unverified reference and flaky failures do
    not fail the run unless ``strict`` (a flaky failure never does).
    """
    found = list(found)
    fails = list(dict.fromkeys(c for c, o in found if o == Outcome.FAIL))
    limits = list(dict.fromkeys(c for c, o in found if o == Outcome.LIMIT))
    flaky = list(dict.fromkeys(c for c, o in found if o == Outcome.FLAKY))
    if expect.kind in ("fail", "may-fail"):
        others = [c for c in fails if not expect.covers(c)]
        if others:
            return Status.FAILED, f"{', '.join(others)} failed where {expect} was expected"
        if fails:
            return Status.XFAILED, None
        if expect.kind == "fail":
            return Status.XPASSED, f"expected {expect}, but no such failure was found"
    elif expect.kind == "limit":
        if fails:
            return Status.FAILED, f"{', '.join(fails)} failed where only {expect} was expected"
        if any(expect.covers(c) for c in limits):
            return Status.LIMIT, None
        return Status.XPASSED, f"expected {expect}, but no such limit was found"
    if fails:
        return Status.FAILED, None
    if limits:
        detail = f"the dtype's limit: {', '.join(limits)}"
        return (Status.FAILED, f"{detail} (strict)") if strict else (Status.LIMIT, detail)
    if unverified:
        return (
            (Status.FAILED, f"{unverified} (strict)")
            if strict
            else (
                Status.UNVERIFIED,
                unverified,
            )
        )
    if flaky:
        return Status.FLAKY, f"did not reproduce: {', '.join(flaky)}"
    return Status.PASSED, None
