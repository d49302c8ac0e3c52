"""Stability maps: failure rate over log-magnitude × a scalar parameter, per mode.

For a target with one scalar argument (a temperature, an eps, a smoothing factor) and float
tensor arguments, a grid sweep sets every float tensor to plain gaussian rows at one log10 scale
and the scalar to one value, and records whether any check fails there (a limit is not a
failure). One map per mode shows where fp16 and bf16 break compared with fp32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.modes import Mode
from ..core.outcomes import Outcome
from ..core.recipes import FLOAT_KINDS, PATTERNS, Example, Recipe
from ..core.strategies import ScalarStrategy, TensorStrategy, resolve_dims
from ..engine.session import UserError
from ..engine.targets import Target

__all__ = ["stability_map"]

POINTS = 6  # a 6 × 6 grid, one sample per cell: 36 evaluations per target × mode


def _sweepable(target: Target) -> tuple[str, ScalarStrategy] | None:
    """The scalar argument to sweep, when the target has exactly one and only recipe strategies."""
    scalars = [(k, a) for k, a in target.arguments.items() if isinstance(a, ScalarStrategy)]
    others = [a for a in target.arguments.values() if not isinstance(a, ScalarStrategy)]
    floats = [a for a in others if isinstance(a, TensorStrategy) and a.kind in FLOAT_KINDS]
    if len(scalars) != 1 or not floats or not all(isinstance(a, TensorStrategy) for a in others):
        return None
    return scalars[0]


def stability_map(target: Target, mode: Mode, *, points: int = POINTS) -> dict[str, Any] | None:
    """The failure-rate grid of ``target`` in ``mode``, or ``None`` when it has no scalar to sweep."""
    found = _sweepable(target)
    if found is None:
        return None
    name, scalar = found
    ranges = resolve_dims(target.arguments, target.options.dims)
    dims = {n: min(max(lo, 4), hi) for n, (lo, hi) in ranges.items()}
    # one axis for every mode, up to float16's max, so the panels compare like for like
    top = 4.8
    bounds = [
        abs(x)
        for a in target.arguments.values()
        if isinstance(a, TensorStrategy)
        for x in (a.min_value, a.max_value)
        if x is not None
    ]
    if bounds:
        top = min(top, math.log10(max(max(bounds), 1e-30)))
    scales = np.round(np.linspace(-2.0, max(top, -1.0), points), 2)
    lo, hi = scalar.min_value, scalar.max_value
    values = np.geomspace(lo, hi, points) if scalar.log and lo > 0 else np.linspace(lo, hi, points)
    session = target.session(mode)
    rate = np.zeros((points, points))
    for i, value in enumerate(values):
        for j, scale in enumerate(scales):
            recipes: dict[str, Recipe] = {}
            for k, a in target.arguments.items():
                if k == name:
                    recipes[k] = scalar.recipe(float(value))
                else:
                    assert isinstance(a, TensorStrategy)
                    pattern = "gaussian" if a.kind in FLOAT_KINDS else PATTERNS[a.kind][0]
                    recipes[k] = a.recipe(dims, pattern=pattern, log10_scale=float(scale), seed=0)
            try:
                obs = session.run(Example(dims, recipes))
                failed = any(v.outcome == Outcome.FAIL for v in obs.violations)
            except UserError:
                failed = True
            rate[i, j] = float(failed)
    return {
        "x_label": "log10 scale of the tensor inputs",
        "x": [float(s) for s in scales],
        "y_label": name,
        "y": [float(x) for x in values],
        "failure_rate": rate.tolist(),
    }
