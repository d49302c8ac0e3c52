"""The Markdown view of a report: a status matrix of targets × modes, then the findings."""

from __future__ import annotations

from .model import Report, describe_diagnosis

__all__ = ["to_markdown"]

STATUS_LABELS = {
    "passed": "✅ pass",
    "failed": "❌ FAIL",
    "xfailed": "⚠️ xfail",
    "xpassed": "❌ XPASS",
    "skipped": "⏭ skip",
    "unsupported": "∅ unsupported",
}


def to_markdown(report: Report) -> str:
    """Compact enough for a CI job summary or a PR comment."""
    modes = list(dict.fromkeys(r.mode for r in report.results))
    targets = list(dict.fromkeys(r.target for r in report.results))
    status = {(r.target, r.mode): r.status for r in report.results}
    verdict = "all expectations met" if report.ok else "**expectations not met**"
    state = "" if report.complete else " (partial: the run was interrupted)"
    lines = [
        f"# torch-stress report `{report.run_id}`{state}",
        "",
        f"{len(targets)} targets × {len(modes)} modes: {verdict}; {len(report.findings)} findings "
        f"({len(report.unexpected)} unexpected).",
        "",
        "| target | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    for t in targets:
        cells = [STATUS_LABELS.get(status.get((t, m), ""), "") for m in modes]
        lines.append(f"| `{t}` | " + " | ".join(cells) + " |")
    if report.findings:
        lines += ["", "## Findings", ""]
        order = {(t, m): i for i, (t, m) in enumerate(status)}
        for f in sorted(
            report.findings, key=lambda f: (f.expected, order.get((f.target, f.mode), 0))
        ):
            tag = "expected" if f.expected else "**unexpected**"
            args = ", ".join(f"{k}={v}" for k, v in f.counterexample.items())
            lines += [
                f"### `{f.target}` · {f.mode} · {f.check} ({tag})",
                "",
                f"{f.message}",
                "",
                f"- counterexample: `{args}`",
            ]
            if f.figures:
                figs = ", ".join(f"{k}={v:.4g}" for k, v in f.figures.items())
                lines.append(f"- figures: {figs}")
            if f.diagnosis:
                lines.append(f"- diagnosis: {describe_diagnosis(f.diagnosis)}")
            lines.append("")
    notes = [
        r for r in report.results if r.reason and r.status in ("skipped", "unsupported", "xfailed")
    ]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- `{r.target}` [{r.mode}] {r.status}: {r.reason}" for r in notes]
    return "\n".join(lines) + "\n"
