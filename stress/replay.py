"""Replaying a finding from a report: its stored counterexample, through the same checks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .discovery import load_object
from .errors import InvalidArgument, ReportError
from .modes import Mode
from .report.model import Finding, Report
from .report.storage import load_inputs, load_report
from .targets import Target, make_target

__all__ = ["ReplayOutcome", "explain", "replay"]


@dataclass(frozen=True)
class ReplayOutcome:
    finding: Finding
    still_fails: bool
    message: str

    def __str__(self) -> str:
        verdict = "still fails" if self.still_fails else "passes now"
        return f"{self.finding.id}: {verdict}: {self.message}"


def _select(findings: list[Finding], which: str) -> Finding:
    by_id = [f for f in findings if f.id == which]
    if by_id:
        return by_id[0]
    if which.isdigit() and 1 <= int(which) <= len(findings):
        return findings[int(which) - 1]
    matches = [f for f in findings if which in f.id]
    if len(matches) == 1:
        return matches[0]
    ids = ", ".join(f.id for f in findings[:10]) or "none"
    raise InvalidArgument(
        f"finding {which!r} matches {len(matches)} findings; give an id or a number 1..{len(findings)} (ids: {ids})"
    )


def explain(report: Report, finding: str) -> str:
    """A finding with its diagnosis: the op, the user's line, statistics and mechanism."""
    f = _select(report.findings, finding)
    if not f.diagnosis:
        return (
            f"{f}\n  no diagnosis: {f.check} is a logic invariant or no op produced the bad value"
        )
    d = f.diagnosis
    stats = "\n".join(f"  {side}: {_stats_line(d[side])}" for side in ("inputs", "output"))
    return f"{f}\n{stats}\n  mechanism: {d.get('mechanism') or 'unknown'}"


def _stats_line(s: dict[str, float]) -> str:
    if not s:
        return "no floating values"
    return ", ".join(f"{k} {v:.4g}" for k, v in s.items())


def replay(report: str | os.PathLike[str], finding: str) -> ReplayOutcome:
    """Re-run one finding (by id, number or unique part of its id) and say whether it still fails."""
    path = Path(report)
    folder = path if path.is_dir() else path.parent
    f = _select(load_report(path).findings, finding)
    if not f.inputs_file or not f.source:
        raise ReportError(
            f"{f.id} cannot be replayed: its report keeps no inputs or no importable target (source={f.source!r})"
        )
    target = load_object(f.source)
    values = load_inputs(folder, f.inputs_file)
    if not isinstance(target, Target):
        if not callable(target):
            raise ReportError(f"{f.source} is not a target or a function")
        target = make_target(target, values)  # a function fuzzed directly: default checks
    name, _, device = f.mode.partition("@")
    session = target.session(Mode(name, device or "cpu"))
    try:
        _, violation = session.check_values(values)
    except Exception as e:  # noqa: BLE001 - the user's exception is the outcome
        return ReplayOutcome(f, f.check == "exception", f"{type(e).__name__}: {e}")
    if violation is None:
        return ReplayOutcome(f, False, "every check passes on the stored counterexample")
    return ReplayOutcome(f, violation.check == f.check, violation.message)
