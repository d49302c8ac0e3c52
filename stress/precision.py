"""Precision comparison for one function: the same examples through every mode, side by side."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hypothesis
import pandas as pd
from hypothesis import Phase, given, settings

from .modes import MODE_NAMES, Mode, resolve_modes
from .strategies import Example, examples
from .targets import make_target

__all__ = ["compare_modes"]


def compare_modes(
    fn: Callable[..., Any],
    *,
    modes: Sequence[str | Mode] | str = MODE_NAMES,
    device: str = "cpu",
    max_examples: int = 100,
    seed: int = 0,
    dims: Mapping[str, tuple[int, int]] | None = None,
    html: str | os.PathLike[str] | None = None,
    **strategies: Any,
) -> pd.DataFrame:
    """Per mode: failure rate, worst error and worst gradient norm over the same examples.

    The examples are drawn once, with magnitudes aimed at the narrowest dtype among ``modes``,
    then each mode rounds them to its own dtype. With ``html=PATH`` a page with the table and
    its bar charts is written too.
    """
    target = make_target(fn, strategies, dims=dims)
    resolved = [m for m in resolve_modes(modes, device) if m.unavailable_reason() is None]
    narrowest = min(resolved, key=lambda m: m.facts.max)
    drawn: list[Example] = []

    @settings(max_examples=max_examples, database=None, deadline=None, phases=[Phase.generate])
    @given(examples(target.arguments, narrowest, target.dims))
    def collect(example: Example) -> None:
        drawn.append(example)

    hypothesis.seed(seed)(collect)()
    rows = []
    for mode in resolved:
        session = target.session(mode)
        failed: Counter[str] = Counter()
        worst_error, worst_grad = 0.0, 0.0
        for example in drawn:
            try:
                figures, violation = session.run(example)
            except Exception as e:  # noqa: BLE001 - an exception is this mode's failure
                failed[f"exception: {type(e).__name__}"] += 1
                continue
            worst_error = _max(worst_error, figures.get("error_eps", 0.0))
            worst_grad = _max(worst_grad, figures.get("grad_norm", 0.0))
            if violation is not None:
                failed[violation.check] += 1
        n = sum(failed.values())
        rows.append(
            {
                "mode": mode.label,
                "examples": len(drawn),
                "failures": n,
                "failure rate": n / max(len(drawn), 1),
                "worst error (eps)": worst_error,
                "worst grad norm": worst_grad,
                "failed checks": ", ".join(f"{k} ×{v}" for k, v in failed.most_common()),
            }
        )
    table = pd.DataFrame(rows).set_index("mode")
    if html is not None:
        _write_html(table, target.name, Path(html))
    return table


def _max(a: float, b: float) -> float:
    return b if math.isnan(a) or b > a else a


def _write_html(table: pd.DataFrame, name: str, path: Path) -> None:
    from .report.html import _CSS, _png, plt
    from .report.storage import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    table["failure rate"].plot.bar(ax=axes[0], color="#c0392b", title="failure rate")
    errors = table["worst error (eps)"].clip(lower=1e-2)
    errors.plot.bar(ax=axes[1], logy=True, color="#34495e", title="worst error (eps units)")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{name}: precision modes</title><style>{_CSS}</style></head>"
        f"<body><h1>{name}: precision modes compared</h1>{table.to_html(float_format=lambda v: f'{v:.3g}')}{_png(fig, 'Failure rate and worst error per mode, over the same examples.')}</body></html>"
    )
    atomic_write(path, lambda fh: fh.write(page.encode()))
