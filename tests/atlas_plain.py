"""The atlas's judgement in plain torch, for ``test_atlas_proofs.py``.

Evaluation is :mod:`plain_torch`'s (the harness's definitions restated with torch alone); this
adds how the atlas reads it:

- A NaN/Inf output or gradient is a *fail* when the float64 value there is NaN/Inf too or within
  the dtype's range, and a *limit* when every float64 value at the bad places is finite but
  beyond the largest finite value of the dtype.
- Outputs are held to 1e-4 (fp32), 1e-2 (fp16, amp-fp16), 5e-2 (bf16, amp-bf16), gradients to
  1e-3 in fp32 and the output tolerance elsewhere.
"""

from __future__ import annotations

import torch
from plain_torch import MODES, Evaluation, compute_dtype, evaluate, normwise_error, round_to

__all__ = ["MODES", "compute_dtype", "evaluate", "normwise_error", "round_to", "shown"]

OUTPUT_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2, "amp-fp16": 1e-2, "amp-bf16": 5e-2}
GRADIENT_TOLERANCE = {**OUTPUT_TOLERANCE, "fp32": 1e-3}


def nonfinite(value: torch.Tensor, ref: torch.Tensor, mode: str) -> str | None:
    """``"fail"``, ``"limit"`` or ``None``: how a NaN/Inf in ``value`` counts (see the module doc)."""
    bad = ~torch.isfinite(value)
    if not bool(bad.any()):
        return None
    dtype = value.dtype if value.dtype != torch.float64 else compute_dtype(mode)
    r = ref.double()[bad]
    if not bool(torch.isfinite(r).all()):
        return "fail"
    return "limit" if bool((r.abs() > torch.finfo(dtype).max).all()) else "fail"


def shown(ev: Evaluation) -> dict[str, str]:
    """Each check the evaluation fails, with its outcome (``fail`` or ``limit``)."""
    found: dict[str, str] = {}
    out = nonfinite(ev.output, ev.ref_output, ev.mode)
    if out:
        found["finite_forward"] = out
    kinds = {nonfinite(g, ev.ref_grads[k], ev.mode) for k, g in ev.grads.items()} - {None}
    if kinds:
        found["finite_gradients"] = "fail" if "fail" in kinds else "limit"
    beyond = lambda ref, dt: float(ref.double().abs().max()) > torch.finfo(dt).max  # noqa: E731
    if ev.output_error > OUTPUT_TOLERANCE[ev.mode]:
        dt = ev.output.dtype if ev.output.dtype != torch.float64 else compute_dtype(ev.mode)
        found["error"] = "limit" if beyond(ev.ref_output, dt) else "fail"
    if ev.gradient_error > GRADIENT_TOLERANCE[ev.mode]:
        found["gradient_error"] = "fail"
    return found
