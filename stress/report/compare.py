"""Comparing a run with a baseline, and merging shard reports.

A finding is keyed by its id, ``target[mode]:check`` (``@output`` when not the only one).
Against a baseline, a new unexpected failure is a regression, a finding that vanished is a fix,
and a status that got worse (passed → failed, xfailed → xpassed, → timeout …) is a regression
too. ``--fail-on`` rules add to those two defaults: ``error:2x`` also makes a worst error (in
eps units) that more than doubled a regression, ``grad:10x`` the same for the gradient norm;
``-status`` or ``-new-findings`` drops a default.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from .model import Report, Result
from .storage import load_inputs

__all__ = ["Comparison", "FailOn", "compare_reports", "merge_reports", "parse_fail_on"]

_ENV_KEYS = ("torch", "cuda", "gpu", "python", "hypothesis")


@dataclass(frozen=True)
class FailOn:
    """What counts as a regression; parsed once, up front, from ``--fail-on``."""

    new_findings: bool = True
    status: bool = True
    error_factor: float | None = None
    grad_factor: float | None = None


_RULE = re.compile(r"^(error|grad):(\d+(?:\.\d+)?)x$")


def parse_fail_on(text: str) -> FailOn:
    """``"error:2x,grad:10x"`` → :class:`FailOn`: rules add to the defaults, ``-rule`` drops one."""
    rules = [r.strip() for r in text.split(",") if r.strip()]
    accepted = "new-findings, status, error:<k>x, grad:<k>x (k > 1), and -new-findings, -status to drop a default"
    if not rules:
        raise InvalidArgument(f"--fail-on is empty; accepted rules: {accepted}")
    options: dict[str, Any] = {"new_findings": True, "status": True}
    for rule in rules:
        name = rule.removeprefix("+")
        m = _RULE.match(name)
        if name in ("new-findings", "status", "-new-findings", "-status"):
            options[name.lstrip("-").replace("-", "_")] = not name.startswith("-")
        elif m and float(m.group(2)) > 1:
            options[f"{m.group(1)}_factor"] = float(m.group(2))
        else:
            raise InvalidArgument(
                f"--fail-on rule {rule!r} is not understood; accepted rules: {accepted}"
            )
    return FailOn(**options)


@dataclass(frozen=True)
class Change:
    kind: str  # regression, fix, worse, better, new-expected
    key: str
    detail: str


@dataclass
class Comparison:
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "regression"]

    @property
    def fixes(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "fix"]

    @property
    def ok(self) -> bool:
        return not self.regressions

    def table(self) -> Any:
        """The changes as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            [{"change": c.kind, "what": c.key, "detail": c.detail} for c in self.changes],
            columns=["change", "what", "detail"],
        )

    def to_markdown(self) -> str:
        verdict = "no regressions" if self.ok else f"**{len(self.regressions)} regression(s)**"
        lines = [f"## torch-stress compare: {verdict}, {len(self.fixes)} fix(es)", ""]
        lines += [f"> ⚠️ {w}" for w in self.warnings]
        if self.changes:
            lines += ["", "| change | what | detail |", "|---|---|---|"]
            lines += [
                f"| {c.kind} | `{c.key}` | {c.detail.replace('|', '/')} |" for c in self.changes
            ]
        return "\n".join(lines) + "\n"


def compare_reports(base: Report, new: Report, fail_on: FailOn | None = None) -> Comparison:
    """What changed from ``base`` to ``new``; see the module docstring for the rules."""
    rules = fail_on or FailOn()
    out = Comparison()
    for k in _ENV_KEYS:
        a, b = base.environment.get(k), new.environment.get(k)
        if a != b:
            out.warnings.append(f"environments differ: {k} {a!r} in the baseline, {b!r} now")
    base_results = {(r.target, r.mode): r for r in base.results}
    new_results = {(r.target, r.mode): r for r in new.results}
    common = base_results.keys() & new_results.keys()
    base_findings = {f.id: f for f in base.findings}
    new_findings = {f.id: f for f in new.findings}
    for fid, f in new_findings.items():
        if fid in base_findings or ((f.target, f.mode) not in common and base_results):
            continue
        if not f.counts:
            out.changes.append(
                Change(f"new-{f.outcome}" if not f.expected else "new-expected", fid, f.message)
            )
        else:
            out.changes.append(
                Change("regression" if rules.new_findings else "new", fid, f.message)
            )
    for fid, f in base_findings.items():
        if fid not in new_findings and (f.target, f.mode) in common:
            out.changes.append(Change("fix", fid, f"no longer found: {f.message}"))
    for key in sorted(common):
        a, b = base_results[key], new_results[key]
        label = f"{key[0]}[{key[1]}]"
        if b.status.fails_run and not a.status.fails_run:
            out.changes.append(
                Change(
                    "regression" if rules.status else "worse",
                    label,
                    f"status {a.status} → {b.status}",
                )
            )
        for figure, factor in (("error_eps", rules.error_factor), ("grad_norm", rules.grad_factor)):
            _ratio_change(out, label, a, b, figure, factor)
    return out


def _ratio_change(
    out: Comparison, label: str, a: Result, b: Result, figure: str, factor: float | None
) -> None:
    old, now = a.worst.get(figure), b.worst.get(figure)
    if old is None or now is None or factor is None or not math.isfinite(old) or old <= 0:
        return
    ratio = now / old
    if ratio > factor or math.isnan(ratio):
        grown = f"{ratio:.3g}×" if math.isfinite(ratio) else "to NaN/Inf"
        out.changes.append(
            Change(
                "regression",
                label,
                f"worst {figure} {old:.3g} → {now:.3g} ({grown}, limit {factor:g}×)",
            )
        )
    elif ratio < 1 / factor:
        out.changes.append(Change("better", label, f"worst {figure} {old:.3g} → {now:.3g}"))


def merge_reports(reports: list[tuple[Report, Path]], *, strict: bool = True) -> Report:
    """One report from shard reports (each with the folder it was read from).

    Everything is checked and read before anything is written: ``strict`` refuses a target ×
    mode found in two reports (shards must not overlap), and each finding's tensors are loaded,
    to be written with the merged report.
    """
    if not reports:
        raise InvalidArgument("merge needs at least one report")
    seen: dict[tuple[str, str], str] = {}
    for report, _ in reports:
        for r in report.results:
            if strict and (r.target, r.mode) in seen:
                raise InvalidArgument(
                    f"{r.id} is in more than one report ({seen[(r.target, r.mode)]} and "
                    f"{report.run_id}): shards must not overlap; nothing was written"
                )
            seen[(r.target, r.mode)] = report.run_id
    first = reports[0][0]
    merged = Report(environment=first.environment, settings=dict(first.settings))
    merged.settings["merged_from"] = [r.run_id for r, _ in reports]
    merged.settings["targets"] = []
    merged.settings.pop("shard", None)
    for report, folder in reports:
        merged.results += report.results
        merged.settings["targets"] += [
            t for t in report.settings.get("targets", []) if t not in merged.settings["targets"]
        ]
        for f in report.findings:
            if f.inputs_file and (folder / f.inputs_file).exists():
                f.inputs, f.inputs_file = load_inputs(folder, f.inputs_file), None
            merged.findings.append(f)
        merged.running += report.running
    merged.complete = all(r.complete for r, _ in reports)
    return merged
