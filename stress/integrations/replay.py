"""Replaying a finding from a report: its stored counterexample, through the same checks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.modes import Mode
from ..core.options import FunctionOptions
from ..engine.discovery import load_object
from ..engine.evaluation import FunctionSession
from ..engine.session import UserError
from ..engine.targets import Target, make_target
from ..errors import InvalidArgument, ReportError
from ..report.markdown import sorted_findings
from ..report.model import Finding, Report
from ..report.render import stats_text
from ..report.storage import load_inputs, load_report

__all__ = ["ReplayOutcome", "explain", "replay"]

# options a report records that a replay of a plain function can restore
_RESTORABLE = (
    "dims",
    "wrt",
    "tolerances",
    "gradient_tolerances",
    "error_floor",
    "max_output",
    "max_grad_norm",
    "gradient_error",
    "backward_error",
)


@dataclass(frozen=True)
class ReplayOutcome:
    finding: Finding
    still_fails: bool
    message: str

    def __str__(self) -> str:
        verdict = "still fails" if self.still_fails else "passes now"
        return f"{self.finding.id}: {verdict}: {self.message}"


def select(findings: list[Finding], which: str) -> Finding:
    """A finding by id, number (1-based, as report.md and report.html number them) or a unique
    part of its id."""
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
    f = select(sorted_findings(report), finding)
    if not f.diagnosis:
        return (
            f"{f}\n  no diagnosis: {f.check} is a logic invariant or no op produced the bad value"
        )
    d = f.diagnosis
    stats = "\n".join(f"  {side}: {stats_text(d[side])}" for side in ("inputs", "output"))
    return f"{f}\n{stats}\n  mechanism: {d.get('mechanism') or 'unknown'}"


def _options(report: Report, f: Finding) -> FunctionOptions:
    for r in report.results:
        if r.target == f.target and r.mode == f.mode:
            kept = {k: r.options[k] for k in _RESTORABLE if r.options.get(k) is not None}
            if "wrt" in kept:
                kept["wrt"] = tuple(kept["wrt"])
            return FunctionOptions(**kept)
    return FunctionOptions()


def replay(report: str | os.PathLike[str], finding: str) -> ReplayOutcome:
    """Re-run one finding (by id, number or unique part of its id) and say whether it still fails."""
    path = Path(report)
    folder = path if path.is_dir() else path.parent
    loaded = load_report(path)
    f = select(sorted_findings(loaded), finding)
    if not f.inputs_file or not f.source:
        raise ReportError(
            f"{f.id} cannot be replayed: its report keeps no inputs or no importable target "
            f"(source={f.source!r}); training-step findings keep only the failing call's batch"
        )
    target: Any = load_object(f.source)
    values = load_inputs(folder, f.inputs_file)
    if not isinstance(target, Target):
        if not callable(target):
            raise ReportError(f"{f.source} is not a target or a function")
        target = make_target(target, values, _options(loaded, f))  # a function fuzzed directly
    name, _, device = f.mode.partition("@")
    session = FunctionSession(target, Mode(name, device or "cpu"))
    try:
        obs = session.check_values(values, explain=True)
    except UserError as e:
        return ReplayOutcome(f, f.check == "exception", str(e))
    same = [v for v in obs.violations if v.check == f.check and (v.key == f.key or not f.key)]
    if same:
        return ReplayOutcome(f, True, same[0].message)
    if obs.violations:
        return ReplayOutcome(f, False, f"{f.check} passes now, but: {obs.violations[0].message}")
    return ReplayOutcome(f, False, "every check passes on the stored counterexample")
