"""The HTML view of a report: one self-contained file (inline CSS, plots embedded as PNG),
rendered from a jinja2 template with autoescaping.

Sections: the status matrix of targets × modes; the worst error per target × mode as a heat map
on a fixed scale (colour and label = the worse of output and gradient error ÷ its tolerance, so 1
means "at the tolerance" in every mode; NaN/Inf in a colour and label of their own) and a table
of worst figures; per
target, the reasons, the gradient-norm distribution per mode (an inline SVG box plot) and, where
the target has a scalar parameter, its stability maps (coloured tables); then every finding with
its counterexample and replay command. matplotlib draws the one large figure; the small
multiples, one per target, are drawn as markup, so a report of hundreds of targets is written in
a second.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never open a window
import matplotlib.pyplot as plt
import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.colors import LogNorm

from ..core.modes import DEFAULT_TOLERANCES, GRADIENT_TOLERANCES
from ..core.outcomes import Status
from .markdown import sorted_findings
from .model import FIGURE_LABELS, Report, Result
from .render import (
    STATUS_LABELS,
    counterexample_text,
    describe_diagnosis,
    figures_text,
    finding_headline,
)

__all__ = ["modes_page", "to_html"]

_MPL = tuple(int(p) for p in matplotlib.__version__.split(".")[:2])
_ENV = Environment(
    loader=PackageLoader("stress.report", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
STATUS_CLASSES = {
    Status.PASSED: "ok",
    Status.XFAILED: "expected",
    Status.LIMIT: "limit",
    Status.FLAKY: "limit",
    Status.UNVERIFIED: "limit",
    Status.UNSUPPORTED: "muted",
    Status.SKIPPED: "muted",
}
_NONFINITE = "#5b2a86"  # NaN/Inf: a colour outside the error scale


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _tolerances(r: Result) -> tuple[float, float]:
    """The output and gradient tolerances of a result's mode, or the target's override."""
    name = r.mode.partition("@")[0]
    outputs = r.options.get("tolerances") or {}
    gradients = r.options.get("gradient_tolerances") or {}
    return (
        float(outputs.get(name, DEFAULT_TOLERANCES.get(name, 1e-4))),
        float(gradients.get(name, GRADIENT_TOLERANCES.get(name, 1e-3))),
    )


def heat_cell(r: Result) -> tuple[float, str]:
    """The worse of output and gradient error ÷ its tolerance (``inf`` for NaN/Inf), and its label."""
    out_tol, grad_tol = _tolerances(r)
    output = r.worst.get("error", 0.0) / out_tol
    gradient = r.worst.get("grad_error", 0.0) / grad_tol
    if not (math.isfinite(output) and math.isfinite(gradient)):
        return math.inf, "NaN/Inf"
    worst = max(output, gradient)
    label = ("∇ " if gradient > output else "") + f"{worst:.2g}"
    # a failure the errors do not show (NaN where float64 is NaN too, an exception, a bound)
    return worst, f"FAIL {label}" if r.status.fails_run and worst <= 1 else label


def error_heatmap(report: Report) -> str | None:
    """The worse of output and gradient error ÷ its tolerance per target and mode (``∇``: the
    gradient's), on a fixed log scale centred on 1."""
    results = [r for r in report.results if "error" in r.worst or "grad_error" in r.worst]
    if not results:
        return None
    targets = list(dict.fromkeys(r.target for r in results))
    modes = list(dict.fromkeys(r.mode for r in results))
    ratio = np.full((len(targets), len(modes)), np.nan)
    labels = np.full((len(targets), len(modes)), "", dtype=object)
    nonfinite = np.zeros((len(targets), len(modes)), dtype=bool)
    for r in results:
        i, j = targets.index(r.target), modes.index(r.mode)
        worst, labels[i, j] = heat_cell(r)
        if math.isfinite(worst):
            ratio[i, j] = min(max(worst, 1e-3), 1e3)
        else:
            nonfinite[i, j] = True
    fig, ax = plt.subplots(figsize=(1.8 + 1.25 * len(modes), 1.0 + 0.3 * len(targets)))
    cmap = matplotlib.colormaps["RdYlGn_r"].copy()
    im = ax.imshow(ratio, cmap=cmap, norm=LogNorm(vmin=1e-3, vmax=1e3), aspect="auto")
    overlay = np.ma.masked_where(~nonfinite, np.ones_like(ratio))
    ax.imshow(overlay, cmap=matplotlib.colors.ListedColormap([_NONFINITE]), aspect="auto")
    ax.set_xticks(range(len(modes)), modes)
    ax.set_yticks(range(len(targets)), targets, fontsize=7)
    ax.xaxis.tick_top()
    for (i, j), text in np.ndenumerate(labels):
        if text:
            light = nonfinite[i, j] or (not np.isnan(ratio[i, j]) and ratio[i, j] > 30)
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if light else "black",
            )
    bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("worst error ÷ the mode's tolerance (∇: a gradient's; 1 = at it)")
    return _png(fig)


_BOX_WIDTH, _BOX_LEFT, _BOX_ROW = 520, 90, 20  # px: plot width, label column, row height


def grad_norm_plot(results: list[Result]) -> dict[str, Any] | None:
    """Box plots of log10 gradient norm per mode, as geometry for an inline SVG.

    Box: the quartiles; line: the median; whiskers: min to max. One SVG per target renders in
    microseconds, where a matplotlib figure per target took a fifth of a second.
    """
    series = {
        r.mode: np.log10([x for x in r.grad_norms if x > 0 and math.isfinite(x)]) for r in results
    }
    series = {m: x for m, x in series.items() if len(x)}
    if not series:
        return None
    lo = math.floor(min(float(x.min()) for x in series.values()))
    hi = max(math.ceil(max(float(x.max()) for x in series.values())), lo + 1)
    span = _BOX_WIDTH - _BOX_LEFT - 20

    def px(v: float) -> float:
        return round(_BOX_LEFT + (v - lo) / (hi - lo) * span, 1)

    rows = []
    for i, (mode, x) in enumerate(series.items()):
        q = np.percentile(x, [0, 25, 50, 75, 100])
        rows.append(
            {
                "mode": mode,
                "y": 8 + i * _BOX_ROW,
                "x": [px(float(v)) for v in q],
                "title": f"{mode}: {len(x)} examples, median 1e{q[2]:.2f}, "
                f"quartiles 1e{q[1]:.2f} to 1e{q[3]:.2f}, range 1e{q[0]:.2f} to 1e{q[4]:.2f}",
            }
        )
    step = max(1, math.ceil((hi - lo) / 10))
    axis_y = 8 + len(rows) * _BOX_ROW
    return {
        "width": _BOX_WIDTH,
        "height": axis_y + 34,
        "left": _BOX_LEFT,
        "row": _BOX_ROW,
        "axis_y": axis_y,
        "rows": rows,
        "ticks": [(px(v), f"{v:g}") for v in range(lo, hi + 1, step)],
    }


def _red(rate: float) -> str:
    """White (never fails) to dark red (always fails)."""
    low, high = (255, 245, 240), (165, 15, 21)
    return "#" + "".join(f"{round(a + (b - a) * rate):02x}" for a, b in zip(low, high, strict=True))


def stability_plot(results: list[Result]) -> dict[str, Any] | None:
    """The stability maps of a target, one grid per mode, as cells for an HTML table."""
    maps = [(r.mode, r.stability) for r in results if r.stability]
    if not maps:
        return None
    panels = []
    for mode, m in maps:
        rates = np.array(m["failure_rate"], dtype=float)
        cells = [  # the highest parameter value on top
            (f"{y:.3g}", [(_red(float(v)), f"{v:.0%}") for v in row])
            for y, row in zip(m["y"], rates, strict=True)
        ][::-1]
        panels.append({"mode": mode, "x": [f"{v:g}" for v in m["x"]], "rows": cells})
    return {"x_label": maps[0][1]["x_label"], "y_label": maps[0][1]["y_label"], "panels": panels}


def _figure_rows(report: Report) -> list[dict[str, Any]]:
    rows = []
    for r in report.results:
        rows.append(
            {
                "target": r.target,
                "mode": r.mode,
                "examples": r.examples,
                "shrinking": r.shrinking,
                "figures": [
                    (label, f"{r.worst[k]:.3g}" if k in r.worst else "–")
                    for k, label in FIGURE_LABELS.items()
                ],
                "seconds": f"{r.seconds:.2f}",
            }
        )
    return rows


def to_html(report: Report, directory: Path | None = None) -> str:
    """The whole page; a person should understand it without reading the JSON."""
    modes = list(dict.fromkeys(r.mode for r in report.results))
    targets = list(dict.fromkeys(r.target for r in report.results))
    by_cell = {(r.target, r.mode): r for r in report.results}
    sections = []
    for t in targets:
        results = [r for r in report.results if r.target == t]
        reasons: dict[str, list[str]] = {}
        for r in results:
            if r.reason:
                reasons.setdefault(r.reason, []).append(r.mode)
        stability = stability_plot(results)
        sections.append(
            {
                "name": t,
                "reasons": [(", ".join(ms), reason) for reason, ms in reasons.items()],
                "grad_norms": grad_norm_plot(results),
                "stability": stability,
            }
        )
    findings = [
        {
            "id": f.id,
            "headline": finding_headline(f),
            "kind": "expected" if f.expected else str(f.outcome),
            "message": f.message,
            "counterexample": counterexample_text(f),
            "figures": figures_text(f.figures),
            "diagnosis": describe_diagnosis(f.diagnosis) if f.diagnosis else None,
            "replay": f.replay_command(str(directory) if directory else None),
            "traceback": f.traceback,
        }
        for f in sorted_findings(report)
    ]
    return _ENV.get_template("report.html.j2").render(
        report=report,
        modes=modes,
        targets=targets,
        cell=lambda t, m: by_cell.get((t, m)),
        label=lambda r: STATUS_LABELS[r.status],
        css_class=lambda r: STATUS_CLASSES.get(r.status, "bad"),
        heatmap=error_heatmap(report),
        figure_labels=list(FIGURE_LABELS.values()),
        figure_rows=_figure_rows(report),
        sections=sections,
        findings=findings,
        environment=report.environment,
    )


def modes_page(table: Any, name: str) -> str:
    """``compare_modes(html=...)``: the table and its two bar charts."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    table["failure rate"].plot.bar(ax=axes[0], color="#c0392b", title="failure rate")
    errors = table["worst error (eps)"].astype(float)
    finite = errors.where(np.isfinite(errors))
    top = float(finite.max()) if finite.notna().any() else 1.0
    shown = errors.where(np.isfinite(errors), max(top, 1.0) * 10).clip(lower=1e-2)
    bars = shown.plot.bar(ax=axes[1], logy=True, color="#34495e", title="worst error (eps units)")
    for i, value in enumerate(errors):
        if not np.isfinite(value):
            bars.patches[i].set_color(_NONFINITE)
            axes[1].annotate(
                "NaN/Inf", (i, float(shown.iloc[i])), ha="center", va="bottom", fontsize=8
            )
    rows = [
        {
            "mode": mode,
            **{str(k): (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()},
        }
        for mode, row in table.iterrows()
    ]
    return _ENV.get_template("modes.html.j2").render(
        name=name, columns=["mode", *map(str, table.columns)], rows=rows, chart=_png(fig)
    )
