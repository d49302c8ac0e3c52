"""Helpers shared by the suites (a leading underscore: not collected as a suite).

The stable twins compute in float32 with autocast off. They widen with :func:`up` rather than
``.float()``: ``up`` leaves a float64 tensor in float64, so the same code called on float64 inputs
(the harness's reference, or a plain-torch proof in ``tests/test_atlas_proofs.py``) is a true
float64 computation.
"""

from __future__ import annotations

import contextlib
import math

import torch


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager[None]:
    """Leave autocast: under amp the matmuls of a loss would otherwise run in float16/bfloat16."""
    return torch.autocast(x.device.type, enabled=False)


def up(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 to float32; float32 and float64 unchanged."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def norm(d: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last dimension, scaled so that neither squares of huge entries
    overflow nor squares of tiny ones underflow (rows below 2^-60 are multiplied by 2^100 first:
    exact, a power of two); its gradient at a zero row is 0, the natural subgradient."""
    small = d.detach().abs().amax(-1, keepdim=True) < 2.0**-60
    scale = torch.where(small, 2.0**100, 1.0).to(d.dtype)
    return torch.linalg.vector_norm(d * scale, dim=-1) / scale.squeeze(-1)


def dft_matrices(
    n: int, dtype: torch.dtype, *, norm: str = "backward"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``-sin`` matrices of the real DFT of length ``n`` (``n // 2 + 1`` bins), so that
    ``x @ cos.T`` and ``x @ sin.T`` are the real and imaginary parts of ``torch.fft.rfft(x)``."""
    k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
    angle = 2 * math.pi * k * torch.arange(n, dtype=torch.float64)[None, :] / n
    cos, sin = torch.cos(angle), -torch.sin(angle)
    # exact twiddles where they are 0 or ±1/2 (cos(pi/2) is 6e-17 in float64): rows whose bins
    # vanish by symmetry then give exactly 0 in every dtype, not rounding noise of either sign
    for t in (cos, sin):
        snapped = torch.round(t * 2) / 2
        t.copy_(torch.where((t - snapped).abs() < 1e-12, snapped, t))
    scale = 1 / math.sqrt(n) if norm == "ortho" else 1.0
    return (cos * scale).to(dtype), (sin * scale).to(dtype)
