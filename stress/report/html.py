"""The HTML view of a report: one self-contained file (inline CSS, plots embedded as PNG).

Sections: the status matrix of targets × modes, colour-coded; worst error and gradient norm
per target × mode (a heat map and a table); per target, the gradient-norm distribution per mode
and, where the target has a scalar parameter, its stability maps (failure rate over
log-magnitude × that parameter, one panel per mode); then every finding with its counterexample.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never open a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .markdown import STATUS_LABELS
from .model import Report, Result, describe_diagnosis

__all__ = ["to_html"]

_MPL = tuple(int(p) for p in matplotlib.__version__.split(".")[:2])

_COLOURS = {
    "passed": "#d7f5dd",
    "failed": "#f8c9c4",
    "xfailed": "#fdeab8",
    "xpassed": "#f8c9c4",
    "skipped": "#e6e6e6",
    "unsupported": "#e6e6e6",
}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em} h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em} td,th{border:1px solid #ccc;padding:.25em .6em;font-size:.9em}
th{background:#f4f4f4} code,pre{background:#f6f6f6;border-radius:3px} pre{padding:.6em;overflow-x:auto}
.ok{color:#1a7f37} .bad{color:#b42318} .finding{border-left:4px solid #b42318;padding-left:1em;margin:1em 0}
.finding.expected{border-color:#d4a72c} img{max-width:100%} .muted{color:#666}
"""


def _png(fig: Any, caption: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    alt = html.escape(caption, quote=True)
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"><figcaption class="muted">{alt}</figcaption></figure>'


def _matrix(report: Report) -> str:
    frame = pd.DataFrame(
        [{"target": r.target, "mode": r.mode, "status": r.status} for r in report.results]
    )
    if frame.empty:
        return "<p>No results.</p>"
    frame = frame.drop_duplicates(
        ["target", "mode"], keep="last"
    )  # a target fuzzed twice in a session
    pivot = frame.pivot(index="target", columns="mode", values="status")
    pivot = pivot.reindex(
        index=list(dict.fromkeys(frame["target"])), columns=list(dict.fromkeys(frame["mode"]))
    )
    styled = pivot.style.map(lambda s: f"background-color:{_COLOURS.get(s, '#fff')}")
    return styled.format(lambda s: STATUS_LABELS.get(s, "") if isinstance(s, str) else "").to_html()


def _figures_table(report: Report) -> str:
    rows = [
        {
            "target": r.target,
            "mode": r.mode,
            "examples": r.examples,
            "worst error (eps)": r.worst.get("error_eps", math.nan),
            "worst error": r.worst.get("error", math.nan),
            "worst grad norm": r.worst.get("grad_norm", math.nan),
            "max |output|": r.worst.get("max_abs_output", math.nan),
            "seconds": r.seconds,
        }
        for r in report.results
    ]
    return pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="–")


def _error_heatmap(report: Report) -> str | None:
    results = [r for r in report.results if "error_eps" in r.worst]
    if not results:
        return None
    targets = list(dict.fromkeys(r.target for r in results))
    modes = list(dict.fromkeys(r.mode for r in results))
    grid = np.full((len(targets), len(modes)), np.nan)
    for r in results:
        v = r.worst["error_eps"]
        grid[targets.index(r.target), modes.index(r.mode)] = (
            math.log10(max(v, 1e-2)) if math.isfinite(v) else np.nan
        )
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(modes), 0.9 + 0.38 * len(targets)))
    im = ax.imshow(grid, cmap="magma_r", aspect="auto")
    ax.set_xticks(range(len(modes)), modes)
    ax.set_yticks(range(len(targets)), targets)
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(
                j,
                i,
                f"{10**v:.3g}" if v > -2 else "0",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v > np.nanmean(grid) else "black",
            )
    fig.colorbar(im, ax=ax, label="log10 worst error (eps units)")
    ax.set_title("Worst error against the float64 reference, per mode")
    return _png(
        fig, "Worst error per target and mode, in units of the mode's eps (darker is worse)."
    )


def _grad_norm_plot(results: list[Result]) -> str | None:
    series = {
        r.mode: [math.log10(v) for v in r.grad_norms if v > 0 and math.isfinite(v)] for r in results
    }
    series = {m: v for m, v in series.items() if v}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    horizontal = {"orientation": "horizontal"} if _MPL >= (3, 10) else {"vert": False}
    ax.boxplot(list(series.values()), **horizontal)
    ax.set_yticks(range(1, len(series) + 1), list(series))
    ax.set_xlabel("log10 gradient norm per example")
    ax.set_title("Gradient-norm distribution per mode")
    return _png(fig, "Gradient norm of every example, per mode.")


def _stability_plot(results: list[Result]) -> str | None:
    maps = [(r.mode, r.stability) for r in results if r.stability]
    if not maps:
        return None
    fig, axes = plt.subplots(
        1, len(maps), figsize=(3.2 * len(maps), 3.0), squeeze=False, sharey=True
    )
    for ax, (mode, m) in zip(axes[0], maps, strict=True):
        x, y = np.array(m["x"]), np.array(m["y"])
        im = ax.imshow(
            np.array(m["failure_rate"]), origin="lower", cmap="Reds", vmin=0, vmax=1, aspect="auto"
        )
        ax.set_xticks(range(len(x)), [f"{v:g}" for v in x], fontsize=7, rotation=45)
        ax.set_yticks(range(len(y)), [f"{v:.3g}" for v in y], fontsize=7)
        ax.set_title(mode)
        ax.set_xlabel(m["x_label"], fontsize=8)
    axes[0][0].set_ylabel(maps[0][1]["y_label"])
    fig.colorbar(im, ax=axes[0].tolist(), label="failure rate")
    fig.suptitle("Stability map: where each mode breaks", y=1.04)
    y_label = maps[0][1]["y_label"]
    return _png(
        fig,
        f"Stability map: failure rate over the inputs' log10 scale × {y_label}, one panel per mode.",
    )


def _finding(f: Any) -> str:
    args = ", ".join(f"{k}={v}" for k, v in f.counterexample.items())
    figs = ", ".join(f"{k} = {v:.4g}" for k, v in f.figures.items())
    tag = "expected" if f.expected else "unexpected"
    extra = f"<p><code>{html.escape(f.replay)}</code></p>" if getattr(f, "replay", None) else ""
    tb = (
        f"<details><summary>traceback</summary><pre>{html.escape(f.traceback)}</pre></details>"
        if f.traceback
        else ""
    )
    return (
        f'<div class="finding {tag}"><h3>{html.escape(f.target)} · {html.escape(f.mode)} · {html.escape(f.check)} '
        f'<span class="muted">({tag})</span></h3><p>{html.escape(f.message)}</p>'
        f"<p>counterexample: <code>{html.escape(args)}</code></p>"
        + (f'<p class="muted">figures: {html.escape(figs)}</p>' if figs else "")
        + (
            f"<p>diagnosis: <code>{html.escape(describe_diagnosis(f.diagnosis))}</code></p>"
            if f.diagnosis
            else ""
        )
        + extra
        + tb
        + "</div>"
    )


def to_html(report: Report) -> str:
    """The whole page; a person should understand it without reading the JSON."""
    verdict = (
        '<span class="ok">all expectations met</span>'
        if report.ok
        else '<span class="bad">expectations not met</span>'
    )
    env = pd.DataFrame([report.environment]).T.rename(columns={0: ""}).to_html(header=False)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>torch-stress {html.escape(report.run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>torch-stress report <code>{html.escape(report.run_id)}</code>{'' if report.complete else ' (partial)'}</h1>",
        f"<p>{len({r.target for r in report.results})} targets × {len({r.mode for r in report.results})} modes: {verdict}; "
        f"{len(report.findings)} findings ({len(report.unexpected)} unexpected). "
        "Expected failures (xfail) are documented weaknesses; an unexpected failure or a missed expected one fails the run.</p>",
        "<h2>Status by precision mode</h2>",
        _matrix(report),
        "<h2>Worst figures</h2>",
        _error_heatmap(report) or "",
        _figures_table(report),
        "<h2>Targets</h2>",
    ]
    for target in dict.fromkeys(r.target for r in report.results):
        results = [r for r in report.results if r.target == target]
        plots = [p for p in (_grad_norm_plot(results), _stability_plot(results)) if p]
        reasons = "".join(
            f"<li>{html.escape(r.mode)}: {html.escape(r.reason)}</li>" for r in results if r.reason
        )
        parts += [
            f"<h3>{html.escape(target)}</h3>",
            *plots,
            f"<ul>{reasons}</ul>" if reasons else "",
        ]
    if report.findings:
        parts.append("<h2>Findings</h2>")
        order = {(r.target, r.mode): i for i, r in enumerate(report.results)}
        for f in sorted(
            report.findings, key=lambda f: (f.expected, order.get((f.target, f.mode), 0))
        ):
            parts.append(_finding(f))
    parts += ["<h2>Environment</h2>", env, "</body></html>"]
    return "\n".join(parts)
