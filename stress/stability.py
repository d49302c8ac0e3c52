"""Stability maps: failure rate over log-magnitude × a scalar parameter, per mode.

For a target with a scalar argument (a temperature, an eps, a smoothing factor) and tensor
arguments, a grid sweep sets every float tensor to plain gaussian rows at one log10 scale and
the scalar to one value, and records the fraction of samples that violate any check. One map
per mode shows where fp16 and bf16 break compared with fp32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .modes import Mode
from .strategies import (
    _PATTERNS,
    Example,
    ScalarRecipe,
    ScalarStrategy,
    TensorRecipe,
    TensorStrategy,
    resolve_dims,
)
from .targets import Target

__all__ = ["stability_map"]

_FLOAT_KINDS = frozenset({"tensors", "embeddings", "activations", "logits"})


def _scalar_argument(target: Target) -> tuple[str, ScalarStrategy] | None:
    scalars = [(k, a) for k, a in target.arguments.items() if isinstance(a, ScalarStrategy)]
    tensors = [
        a
        for a in target.arguments.values()
        if isinstance(a, TensorStrategy) and a.kind in _FLOAT_KINDS
    ]
    return scalars[0] if len(scalars) == 1 and tensors else None


def stability_map(
    target: Target, mode: Mode, *, points: int = 8, samples: int = 2
) -> dict[str, Any] | None:
    """The failure-rate grid of ``target`` in ``mode``, or ``None`` when it has no scalar argument."""
    found = _scalar_argument(target)
    if found is None:
        return None
    name, scalar = found
    ranges = resolve_dims(target.arguments, target.dims)
    dims = {n: min(max(lo, 4), hi) for n, (lo, hi) in ranges.items()}
    # one axis for every mode, up to float16's max, so the panels compare like for like
    top = 5.0
    bounds = [
        abs(v)
        for a in target.arguments.values()
        if isinstance(a, TensorStrategy)
        for v in (a.min_value, a.max_value)
        if v is not None
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
            failures = 0
            for seed in range(samples):
                recipes: dict[str, Any] = {}
                for k, a in target.arguments.items():
                    if k == name:
                        recipes[k] = ScalarRecipe(scalar.kind, float(value))
                    elif isinstance(a, TensorStrategy):
                        shape = tuple(dims[d] if isinstance(d, str) else d for d in a.shape)
                        options = tuple(
                            (o, dims[v] if o == "num_classes" and isinstance(v, str) else v)
                            for o, v in a.options
                        )
                        scaled = float(scale) if a.kind in _FLOAT_KINDS else 0.0
                        pattern = "gaussian" if a.kind in _FLOAT_KINDS else _first_pattern(a)
                        recipes[k] = TensorRecipe(
                            a.kind,
                            shape,
                            a.shape,
                            pattern,
                            scaled,
                            seed,
                            a.min_value,
                            a.max_value,
                            options,
                        )
                    else:
                        return None  # a plain Hypothesis strategy: no grid to sweep
                try:
                    _, violation = session.run(Example(dims, recipes))
                except Exception:  # noqa: BLE001 - an exception is a failure like any other here
                    violation = True
                failures += violation is not None
            rate[i, j] = failures / samples
    return {
        "x_label": "log10 scale of the tensor inputs",
        "x": [float(s) for s in scales],
        "y_label": name,
        "y": [float(v) for v in values],
        "failure_rate": rate.tolist(),
    }


def _first_pattern(a: TensorStrategy) -> str:
    return _PATTERNS[a.kind][0]
