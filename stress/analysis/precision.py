"""Precision comparison for one function: the same inputs through every mode, side by side.

Every example is drawn once, aimed at the narrowest dtype among the modes compared (float16's
range when float16 is among them), and rounded until it is exactly representable in every dtype
involved — so each mode receives bit-identical input values, and a difference between two
columns is a difference between the modes, never between their inputs.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hypothesis
import torch
from hypothesis import Phase, given, settings

from ..core.modes import MODE_NAMES, Mode, resolve_modes
from ..core.options import FunctionOptions, RunOptions
from ..core.outcomes import Outcome
from ..core.recipes import Example
from ..core.strategies import examples
from ..engine.evaluation import FunctionSession
from ..engine.session import UserError
from ..engine.targets import make_target

__all__ = ["common_inputs", "compare_modes"]


def common_inputs(values: Mapping[str, Any], modes: Sequence[Mode]) -> dict[str, Any]:
    """``values`` rounded until exactly representable in every dtype the modes use."""
    dtypes = sorted(
        {d for m in modes for d in (m.storage_dtype, m.compute_dtype)},
        key=lambda d: torch.finfo(d).bits,
        reverse=True,
    )
    out: dict[str, Any] = {}
    for k, x in values.items():
        if isinstance(x, float):
            x = torch.tensor(x, dtype=torch.float64)
            out[k] = float(_round_through(x, dtypes))
        elif isinstance(x, torch.Tensor) and x.is_floating_point():
            out[k] = _round_through(x.double(), dtypes)
        else:
            out[k] = x
    return out


def _round_through(x: torch.Tensor, dtypes: list[torch.dtype]) -> torch.Tensor:
    limit = min(torch.finfo(d).max for d in dtypes)
    x = x.clamp(-limit, limit)
    for _ in range(4):  # bfloat16 then float16 then bfloat16 ... settles at once in practice
        before = x
        for d in dtypes:
            x = x.to(d).double()
        if torch.equal(before, x):
            return x
    return x


def compare_modes(
    fn: Callable[..., Any],
    /,
    *,
    modes: Sequence[str | Mode] | str = MODE_NAMES,
    device: str = "cpu",
    max_examples: int = 100,
    seed: int = 0,
    html: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Per mode: failure rate, worst error and worst gradient norm over the same inputs.

    The inputs are drawn for the narrowest mode, so every mode can represent them exactly: the
    comparison is like for like, but a failure only float32's own resolution exposes (values a
    few float32 eps apart) is not drawn — ``stress.fuzz(fn, modes=("fp32",))`` searches for it.

    Keywords other than those above are the target's options (``dims``, ``wrt``,
    ``tolerances`` …) or the strategies of its parameters, as for :func:`stress.fuzz`. Returns a
    pandas DataFrame indexed by mode; with ``html=PATH`` a page with the table and its charts::

        table = stress.compare_modes(info_nce, x=st.embeddings(("B", "D")), y=..., max_examples=200)
    """
    import pandas as pd

    RunOptions(modes=modes, device=device, max_examples=max_examples, seed=seed)  # type: ignore[arg-type] # validated
    given_options, strategies = FunctionOptions.split(kwargs)
    target = make_target(fn, strategies, FunctionOptions(**given_options))
    resolved = [m for m in resolve_modes(modes, device) if m.unavailable_reason() is None]
    narrowest = min(resolved, key=lambda m: m.facts.max)
    drawn: list[Example] = []

    @settings(max_examples=max_examples, database=None, deadline=None, phases=[Phase.generate])
    @given(examples(target.arguments, narrowest, target.options.dims))
    def collect(example: Example) -> None:
        drawn.append(example)

    hypothesis.seed(seed)(collect)()
    inputs = [common_inputs(e.materialize(narrowest), resolved) for e in drawn]
    rows = []
    for mode in resolved:
        session = FunctionSession(target, mode)
        failed: Counter[str] = Counter()
        limits = failures = 0
        worst_error, worst_grad = 0.0, 0.0
        for values in inputs:
            cast = {k: _cast(x, mode) for k, x in values.items()}
            try:
                obs = session.check_values(cast)
            except UserError as e:
                failed[f"exception: {type(e.error).__name__}"] += 1
                failures += 1
                continue
            worst_error = _max(worst_error, obs.figures.get("error_eps", 0.0))
            worst_grad = _max(worst_grad, obs.figures.get("grad_norm", 0.0))
            fails = [v for v in obs.violations if v.outcome == Outcome.FAIL]
            failed.update({v.check for v in fails})  # every check, once per example
            failures += bool(fails)
            limits += bool(obs.violations) and not fails
        rows.append(
            {
                "mode": mode.label,
                "examples": len(inputs),
                "failures": failures,
                "failure rate": failures / max(len(inputs), 1),
                "limits": limits,
                "worst error (eps)": worst_error,
                "worst grad norm": worst_grad,
                "failed checks": ", ".join(f"{k} ×{x}" for k, x in failed.most_common()),
            }
        )
    table = pd.DataFrame(rows).set_index("mode")
    if html is not None:
        from ..report.html import modes_page
        from ..report.storage import atomic_write

        page = modes_page(table, target.name)
        atomic_write(Path(html), lambda fh: fh.write(page.encode()))
    return table


def _cast(x: Any, mode: Mode) -> Any:
    """Exactly representable already: casting to the mode's storage dtype changes no value."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.to(mode.storage_dtype)
    return x


def _max(a: float, b: float) -> float:
    return b if math.isnan(a) or b > a else a
