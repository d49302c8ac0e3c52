"""The post-mortems in shared/seeds/ as runnable targets: each naive version beside its fix.

Every ``*_naive`` target is expected to fail (the harness must find it); every ``*_fixed``
twin must pass in every mode. ``torch.cdist`` and ``torch.fft`` have no float16/bfloat16 CPU
kernels, so on the CPU the same formulas are written with ops that run (explicit differences,
a DFT as a matmul); on CUDA the original ops are used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from _helpers import full_precision  # the suites' folder is on sys.path

import stress
from stress import st


def pairwise_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``torch.cdist(x, y)``, as explicit differences where cdist has no kernel (fp16/bf16 CPU)."""
    if x.is_cuda:
        return torch.cdist(x, y)
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).sqrt()


def rdft(x: torch.Tensor, norm: str = "backward") -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of ``torch.fft.rfft(x, norm=norm)``; a matmul DFT on the CPU."""
    if x.is_cuda:
        spec = torch.fft.rfft(x, norm=norm)
        return spec.real, spec.imag
    n = x.shape[-1]
    k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
    angle = 2 * math.pi * k * torch.arange(n, dtype=torch.float64)[None, :] / n
    scale = 1 / math.sqrt(n) if norm == "ortho" else 1.0
    cos = (torch.cos(angle) * scale).to(x.dtype)
    sin = (-torch.sin(angle) * scale).to(x.dtype)
    return x @ cos.T, x @ sin.T


# --- seed 000: GTCC alignment loss, exp(-cdist / 0.1) normalised by its sum -----------------

_frames = dict(
    x=st.embeddings(("N", "D"), min_value=-10, max_value=10),
    y=st.embeddings(("M", "D"), min_value=-10, max_value=10),
)


@stress.target(
    **_frames,
    expect="fail",
    reason="exp(-dist/0.1) underflows to 0 for dist > ~10 (fp32), so the normaliser is 0/0; sqrt at dist 0 has an infinite derivative",
)
def gtcc_alignment_naive(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dist = pairwise_distance(x, y)
    alpha = torch.exp(-dist / 0.1)
    alpha = alpha / alpha.sum(dim=1, keepdim=True)
    soft_nn = alpha @ y  # each frame's soft nearest neighbour in the other sequence
    return ((x - soft_nn) ** 2).sum(-1).mean()


@stress.target(**_frames)
def gtcc_alignment_fixed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with full_precision(x):
        xf, yf = x.float(), y.float()  # differences of fp16 inputs overflow fp16 when squared
        d2 = ((xf[:, None, :] - yf[None, :, :]) ** 2).sum(-1)
        dist = d2.clamp_min(1e-12).sqrt()  # no infinite derivative at distance 0
        alpha = torch.softmax(-dist / 0.1, dim=1)  # max-subtracted: the normaliser is never 0
        soft_nn = alpha @ yf
        return ((xf - soft_nn) ** 2).sum(-1).mean()


# --- seed 002: InfoNCE at temperature 0.07 in bf16/fp16 -------------------------------------

_pairs = dict(
    x=st.embeddings(("B", "D"), min_value=-100, max_value=100),
    y=st.embeddings(("B", "D"), min_value=-100, max_value=100),
)


@stress.target(
    **_pairs,
    expect="fail",
    reason="unnormalised logits / 0.07 reach exp's overflow threshold (88.7; 11.1 in fp16); exp().sum().log() is not max-subtracted",
)
def info_nce_naive(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = x @ y.T / 0.07
    return -(logits.diag() - logits.exp().sum(1).log()).mean()


@stress.target(**_pairs)
def info_nce_fixed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with full_precision(x):
        # cosine logits are bounded by 1/0.07. normalize's gradient is ~1/eps at a zero row:
        # eps=1e-3 keeps it representable in float16 (the default 1e-12 gives ~1e7 -> inf)
        xf = F.normalize(x.float(), dim=-1, eps=1e-3)
        yf = F.normalize(y.float(), dim=-1, eps=1e-3)
        logits = xf @ yf.T / 0.07
        return F.cross_entropy(logits, torch.arange(len(x), device=x.device))  # log-sum-exp inside


# --- LayerNorm written by hand, x / sqrt(var + 1e-5), in fp16 -------------------------------

_acts = dict(x=st.activations(("B", "D"), min_value=-1e4, max_value=1e4))


@stress.target(
    **_acts,
    dims={"D": (2, 16)},
    expect={"fp16": "fail", "bf16": "may-fail"},
    reason="(x - mean)**2 overflows float16 for |x| > 256; a bfloat16-rounded mean breaks a narrow row's symmetry",
    # amp modes pass: CPU autocast keeps mean, pow and sqrt in float32
)
def layer_norm_naive(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5)


@stress.target(**_acts, dims={"D": (2, 16)})
def layer_norm_fixed(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x.float(), x.shape[-1:], eps=1e-5).to(x.dtype)  # statistics in float32


# --- An un-normalised FFT L1 loss in fp16 ---------------------------------------------------

_signals = dict(
    x=st.activations(("B", "T"), min_value=-1e3, max_value=1e3),
    y=st.activations(("B", "T"), min_value=-1e3, max_value=1e3),
)


@stress.target(
    **_signals,
    expect="fail",
    reason="|X| = sqrt(re²+im²) has an infinite derivative at 0 (every mode); the unnormalised |X|² overflows float16",
)
def fft_l1_naive(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xr, xi = rdft(x)
    yr, yi = rdft(y)
    return ((xr**2 + xi**2).sqrt() - (yr**2 + yi**2).sqrt()).abs().mean()


@stress.target(**_signals)
def fft_l1_fixed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with full_precision(x):
        xr, xi = rdft(x.float(), norm="ortho")  # orthonormal: the spectrum keeps the signal's scale
        yr, yi = rdft(y.float(), norm="ortho")
        return (
            (xr - yr).abs() + (xi - yi).abs()
        ).mean()  # L1 on the complex spectrum: no sqrt at 0
