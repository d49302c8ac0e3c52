"""The Markdown view of a report: a status matrix of targets × modes, then the findings.

Compact enough for a CI job summary or a PR comment.
"""

from __future__ import annotations

from pathlib import Path

from ..core.outcomes import Outcome
from .model import Finding, Report
from .render import (
    STATUS_LABELS,
    counterexample_text,
    describe_diagnosis,
    figures_text,
    finding_headline,
)

__all__ = ["to_markdown"]


def _order(report: Report) -> dict[tuple[str, str], int]:
    return {(r.target, r.mode): i for i, r in enumerate(report.results)}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def sorted_findings(report: Report) -> list[Finding]:
    """Unexpected failures first, then expected ones, then limits and flaky ones; in run order."""
    order = _order(report)
    rank = {Outcome.FAIL: 0, Outcome.FLAKY: 2, Outcome.LIMIT: 3}
    return sorted(
        report.findings,
        key=lambda f: (
            rank[f.outcome] + (1 if f.expected else 0),
            order.get((f.target, f.mode), 0),
        ),
    )


def to_markdown(report: Report, directory: Path | None = None) -> str:
    modes = list(dict.fromkeys(r.mode for r in report.results))
    targets = list(dict.fromkeys(r.target for r in report.results))
    status = {(r.target, r.mode): r.status for r in report.results}
    verdict = "all expectations met" if report.ok else "**expectations not met**"
    state = "" if report.complete else " (partial: the run was interrupted)"
    lines = [
        f"# torch-stress report `{report.run_id}`{state}",
        "",
        f"{_count(len(targets), 'target')} × {_count(len(modes), 'mode')}: {verdict}; "
        f"{_count(len(report.findings), 'finding')} ({len(report.unexpected)} unexpected).",
        "",
    ]
    if report.running:
        lines += ["Still running when the run stopped:", ""]
        lines += [f"- {r}" for r in report.running]
        lines.append("")
    lines += ["| target | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for t in targets:
        cells = [STATUS_LABELS[status[(t, m)]] if (t, m) in status else "" for m in modes]
        lines.append(f"| `{t}` | " + " | ".join(cells) + " |")
    if report.findings:
        lines += ["", "## Findings", ""]
        for number, f in enumerate(sorted_findings(report), 1):  # the numbers replay takes
            lines += [f"### {number}. `{f.id}`", "", finding_headline(f), "", f.message, ""]
            lines.append(f"- counterexample: `{counterexample_text(f)}`")
            if f.figures:
                lines.append(f"- figures: {figures_text(f.figures)}")
            if f.diagnosis:
                lines.append(f"- diagnosis: {describe_diagnosis(f.diagnosis)}")
            replay = f.replay_command(str(directory) if directory else None)
            if replay:
                lines.append(f"- replay: `{replay}`")
            lines.append("")
    notes = [r for r in report.results if r.reason]
    if notes:
        lines += ["", "## Notes", ""]
        seen: set[tuple[str, str]] = set()
        for r in notes:
            if (r.target, r.reason) in seen:
                continue  # one line for a reason every mode shares
            seen.add((r.target, r.reason or ""))
            same = [x.mode for x in notes if x.target == r.target and x.reason == r.reason]
            lines.append(f"- `{r.target}` [{', '.join(same)}] {r.status}: {r.reason}")
    return "\n".join(lines) + "\n"
