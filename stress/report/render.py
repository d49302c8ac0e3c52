"""The one rendering of a finding, a diagnosis and a status, used by every view: the terminal,
pytest, ``report.md`` and ``report.html``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..core.outcomes import Outcome, Status

if TYPE_CHECKING:
    from .model import Finding, Report

__all__ = [
    "STATUS_LABELS",
    "counterexample_text",
    "describe_diagnosis",
    "figures_text",
    "finding_headline",
    "finding_text",
    "report_text",
    "shown_values",
    "stats_text",
]

# a symbol and a word: the word stays readable where no emoji font is installed
STATUS_LABELS: dict[Status, str] = {
    Status.PASSED: "✅ pass",
    Status.FAILED: "❌ FAIL",
    Status.XFAILED: "☑️ xfail",
    Status.XPASSED: "❌ XPASS",
    Status.LIMIT: "⚠️ limit",
    Status.FLAKY: "〰️ flaky",
    Status.UNVERIFIED: "❔ unverified",
    Status.UNSUPPORTED: "∅ unsupported",
    Status.SKIPPED: "⏭ skip",
    Status.TIMEOUT: "⏱ TIMEOUT",
    Status.CRASH: "💥 CRASH",
    Status.ERROR: "❌ ERROR",
}

_FIGURES = {
    "max_abs_output": "max |output|",
    "grad_norm": "grad norm",
    "error": "error",
    "error_eps": "error (eps)",
    "grad_error": "grad error",
}


def figures_text(figures: dict[str, float]) -> str:
    return ", ".join(f"{_FIGURES.get(k, k)} = {v:.4g}" for k, v in figures.items())


# a tensor input this small is shown by value beside its recipe
SHOWN_ELEMENTS = 8


def counterexample_text(f: Finding) -> str:
    text = ", ".join(
        f"{k}={v}" + (f" = {f.values[k]}" if k in f.values else "")
        for k, v in f.counterexample.items()
    )
    return text if f.shrunk else f"{text} (as first found, not shrunk)"


def shown_values(inputs: dict[str, Any]) -> dict[str, str]:
    """``[[100, -3.5]]`` for each tensor of at most ``SHOWN_ELEMENTS`` elements."""
    return {
        k: _nested(x.tolist())
        for k, x in inputs.items()
        if isinstance(x, torch.Tensor) and 0 < x.numel() <= SHOWN_ELEMENTS
    }


def _nested(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_nested(x) for x in v) + "]"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def stats_text(s: dict[str, float]) -> str:
    """``min … max …`` of an op's input or output, as the diagnosis records them."""
    if not s:
        return "no floating values"
    finite = s["numel"] - s.get("inf", 0) - s.get("nan", 0)
    parts = (
        [f"min {s['min']:.4g}", f"max {s['max']:.4g}", f"max |x| {s['max_abs']:.4g}"]
        if finite
        else ["no finite value"]
    )
    parts.append(f"{int(s['zeros'])} zeros")
    if s.get("inf") or s.get("nan"):
        parts.append(f"{int(s['inf'])} inf, {int(s['nan'])} nan")
    return ", ".join(parts) + f" (of {int(s['numel'])})"


def describe_diagnosis(d: dict[str, Any]) -> str:
    """One line: the op, its phase and user line, and the mechanism's sentence."""
    where = f" at {d['location']}" if d.get("location") else ""
    via = f", in {d['node']}" if d.get("node") else ""
    return f"first {d['kind']} value from {d['op']} [{d['phase']}{via}, {d['dtype']}]{where}: {d['explanation']}"


def finding_headline(f: Finding) -> str:
    if f.outcome == Outcome.LIMIT:
        return f"{f.check} hit a limit of the dtype for {f.target} in {f.mode} (not a failure unless strict)"
    if f.outcome == Outcome.FLAKY:
        return f"{f.check} failed once for {f.target} in {f.mode} but did not reproduce (flaky)"
    tag = "expected" if f.expected else "UNEXPECTED"
    return f"{f.check} failed for {f.target} in {f.mode} ({tag})"


def finding_text(f: Finding, report_dir: str | None = None) -> str:
    """Several lines: what failed, the numbers, the counterexample, and where it came from."""
    lines = [finding_headline(f), f"  {f.message}", f"  counterexample: {counterexample_text(f)}"]
    if f.figures:
        lines.append(f"  figures: {figures_text(f.figures)}")
    if f.diagnosis:
        lines.append(f"  diagnosis: {describe_diagnosis(f.diagnosis)}")
        if not f.diagnosis.get("mechanism"):
            lines.append(f"    inputs: {stats_text(f.diagnosis.get('inputs', {}))}")
            lines.append(f"    output: {stats_text(f.diagnosis.get('output', {}))}")
    if f.traceback:
        from ..analysis.diagnosis import user_frame_from_text

        where = user_frame_from_text(f.traceback)
        if where:
            lines.append(f"  raised at {where}")
    replay = f.replay_command(report_dir) if report_dir else None
    if replay:
        lines.append(f"  replay: {replay}")
    return "\n".join(lines)


_UNCHECKED = frozenset({Status.UNVERIFIED, Status.UNSUPPORTED})


def report_text(report: Report) -> str:
    """A one-line verdict, then every finding that fails the run."""
    counts: dict[str, int] = {}
    for r in report.results:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    head = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    partial = "" if report.complete else ", partial"
    lines = [
        f"Report {report.run_id}: {'OK' if report.ok else 'FAILED'} ({head}; "
        f"{len(report.findings)} findings{partial})"
    ]
    for r in report.results:
        # a run that passes can still have checked less than asked: say why
        if r.reason and (r.status.fails_run or r.status in _UNCHECKED):
            lines.append(f"{r.id} {r.status}: {r.reason}")
    lines += [str(f) for f in report.unexpected]
    return "\n".join(lines)
