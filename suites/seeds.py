"""The post-mortems in shared/seeds/ as runnable targets: each naive version beside its fix.

Every ``*_naive`` target is expected to fail where its expectation says (the harness must find
it); every ``*_fixed`` twin is the same mathematical function written the way an expert would,
and passes in every mode.

Which kernels run depends on the device. ``torch.cdist`` and ``torch.fft`` have no
float16/bfloat16 CPU kernels, so on the CPU the naive targets write the same formulas with ops
that run — distances as explicit differences, ``sqrt(sum(d²))``, and the DFT as a matmul with
``|X| = sqrt(re² + im²)`` — and on CUDA they call ``torch.cdist`` and ``torch.fft.rfft``. The
expectations here were found on the CPU: they describe the explicit formulas. The fixed twins
compute the same way on both devices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _helpers import dft_matrices, full_precision, norm, up  # the suites' folder is on sys.path

import stress
from stress import st


def pairwise_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``torch.cdist(x, y)`` on CUDA; on the CPU (no float16/bfloat16 cdist kernel) the explicit
    ``sqrt(sum((x_i - y_j)²))``."""
    if x.is_cuda:
        return torch.cdist(x, y)
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).sqrt()


def rdft(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of ``torch.fft.rfft(x)``: the FFT on CUDA, a matmul DFT on the CPU
    (no float16/bfloat16 FFT kernel there)."""
    if x.is_cuda:
        spec = torch.fft.rfft(x)
        return spec.real, spec.imag
    cos, sin = dft_matrices(x.shape[-1], x.dtype)
    return x @ cos.T, x @ sin.T


# --- seed 000: GTCC alignment loss, exp(-cdist / 0.1) normalised by its sum -----------------

_frames = dict(
    x=st.embeddings(("N", "D"), min_value=-10, max_value=10),
    y=st.embeddings(("M", "D"), min_value=-10, max_value=10),
)


@stress.target(
    **_frames,
    expect={
        "fp32": ("finite_forward", "finite_gradients"),
        "fp16": ("finite_forward", "finite_gradients"),
        "bf16": ("finite_forward", "finite_gradients", "gradient_error"),
        "amp-fp16": ("finite_forward", "finite_gradients"),
        "amp-bf16": ("finite_forward", "finite_gradients"),
    },
    reason="(CPU path: explicit distances) exp(-dist/0.1) underflows to 0 for every frame, so the "
    "normaliser is 0/0; sqrt at distance 0 has an infinite derivative (0·inf = NaN); in bfloat16 "
    "the weights keep 8 bits",
)
def gtcc_alignment_naive(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dist = pairwise_distance(x, y)
    alpha = torch.exp(-dist / 0.1)
    alpha = alpha / alpha.sum(dim=1, keepdim=True)
    soft_nn = alpha @ y  # each frame's soft nearest neighbour in the other sequence
    return ((x - soft_nn) ** 2).sum(-1).mean()


@stress.target(**_frames)
def gtcc_alignment_fixed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A softmax over -dist/0.1 (max-subtracted: the normaliser is at least 1) of scaled norms
    (gradient 0 at distance 0, the subgradient), in float32."""
    with full_precision(x):
        xf, yf = up(x), up(y)
        alpha = torch.softmax(-norm(xf[:, None, :] - yf[None, :, :]) / 0.1, dim=1)
        return ((xf - alpha @ yf) ** 2).sum(-1).mean()


# --- seed 002: InfoNCE at temperature 0.07 in bf16/fp16 -------------------------------------

# projections of a few units (the seed's model normalised them, to unit scale)
_pairs = dict(
    x=st.embeddings(("B", "D"), min_value=-2, max_value=2),
    y=st.embeddings(("B", "D"), min_value=-2, max_value=2),
)


@stress.target(
    **_pairs,
    expect={
        "fp32": ("finite_forward", "finite_gradients"),
        "fp16": ("finite_forward", "finite_gradients", "error"),
        "bf16": ("finite_forward", "error", "gradient_error"),
        "amp-fp16": ("finite_forward", "finite_gradients", "error"),
        "amp-bf16": ("finite_forward", "gradient_error"),
    },
    reason="unnormalised logits / 0.07 reach exp's overflow threshold (88.7; 11.1 in fp16): "
    "exp().sum().log() is not max-subtracted; below -9.7 (float16) or -87.3 (float32) exp is "
    "subnormal and the backward's 1/sum overflows, and log() of a subnormal float16 sum keeps "
    "a few bits; in bfloat16 exp(l)/sum, rounded to 8 bits, is multiplied by 1/0.07",
)
def info_nce_naive(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = x @ y.T / 0.07
    return -(logits.diag() - logits.exp().sum(1).log()).mean()


@stress.target(**_pairs)
def info_nce_fixed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logsumexp of the logits relative to each row's positive, x_i·(y_j - y_i) / 0.07: the same
    loss (log-softmax is shift-invariant), max-subtracted, in float32."""
    with full_precision(x):
        xf, yf = up(x), up(y)
        rel = (xf[:, None, :] * (yf[None, :, :] - yf[:, None, :])).sum(-1) / 0.07
        return torch.logsumexp(rel, dim=1).mean()  # rel[i, i] = 0 is the positive


# --- seed 003: LayerNorm written by hand, x / sqrt(var + 1e-5), in fp16 ---------------------

_acts = dict(x=st.activations(("B", "D"), min_value=-1e4, max_value=1e4))


@stress.target(
    **_acts,
    dims={"D": (2, 16)},
    expect={
        "fp32": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
        "fp16": ("error", "finite_gradients", "gradient_error"),
        "bf16": ("error", "gradient_error"),
    },
    reason="(x - mean)**2 overflows float16 for |x| > 256; a rounded mean of a row with a large common "
    "offset leaves its spread with few bits (float32 too), and 1/sqrt(var + 1e-5) amplifies it",
)
def layer_norm_naive(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5)


@stress.target(**_acts, dims={"D": (2, 16)})
def layer_norm_fixed(x: torch.Tensor) -> torch.Tensor:
    """``F.layer_norm`` in float32 of the row shifted by its first element (exact for nearby
    values, so a large common offset cancels before the statistics; LayerNorm is shift-invariant)."""
    with full_precision(x):
        xf = up(x)
        return F.layer_norm(xf - xf[..., :1], x.shape[-1:], eps=1e-5).to(x.dtype)


# --- seed 003: an un-normalised FFT L1 loss on the coefficients -----------------------------

_signals = dict(
    x=st.activations(("B", "T"), min_value=-1e3, max_value=1e3),
    y=st.activations(("B", "T"), min_value=-1e3, max_value=1e3),
)


@stress.target(
    **_signals,
    expect={
        "fp32": ("finite_gradients", "gradient_error"),
        "fp16": ("finite_forward", "finite_gradients", "error", "gradient_error"),
        "bf16": ("finite_gradients", "error", "gradient_error"),
        "amp-fp16": ("finite_forward", "finite_gradients", "error", "gradient_error"),
        "amp-bf16": ("finite_gradients", "error", "gradient_error"),
    },
    reason="(CPU path: matmul DFT, explicit modulus) |X - Y| = sqrt(re² + im²) has an infinite "
    "derivative where the spectra agree (0·inf = NaN), and X - Y of separately rounded spectra "
    "cancels (in 16 bits, to a few bits of the loss too); re² of un-normalised coefficients "
    "overflows float16",
)
def fft_l1_naive(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xr, xi = rdft(x)
    yr, yi = rdft(y)
    return ((xr - yr) ** 2 + (xi - yi) ** 2).sqrt().mean()  # L1 on the complex coefficients


@stress.target(**_signals)
def fft_l1_fixed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The same loss, in float32, the expert's way (on CUDA too): the DFT is linear, so the
    spectrum of x - y is taken directly. The subtraction's own rounding error is recovered
    exactly (Knuth's TwoSum: d + err = x - y), so neither near-copies (d exact) nor signals at
    opposite large offsets (the spread lost in d, kept in err) lose bits; each signal's mean only
    feeds bin 0, so the other bins come from the centred difference; a row of tiny differences is
    scaled by 2^100 first (exact); and the modulus is a scaled norm (no overflow of re², gradient
    0 where the spectra agree, as torch's complex abs).

    Its gradient is that of |X - Y|, which has a kink where the spectra agree. Where a bin's
    difference lies below what the dtype resolves (subnormal inputs, or bins equal to rounding
    under a perturbation of a thousandth of an eps), no dtype can tell on which side of the kink
    it is: the harness reports those inputs as limits, not failures."""
    with full_precision(x):
        xf, yf = up(x), up(y)
        n = xf.shape[-1]
        d = xf - yf
        with torch.no_grad():  # the rounding error of d; its derivative is 0
            back = d - xf
            err = (xf - (d - back)) + (-yf - back)
        spread = (d - d.mean(-1, keepdim=True)) + (err - err.mean(-1, keepdim=True))
        total = d.sum(-1, keepdim=True) + err.sum(-1, keepdim=True)  # bin 0
        level = torch.maximum(spread.detach().abs().amax(-1, keepdim=True), total.detach().abs())
        scale = torch.where(level < 2.0**-60, 2.0**100, 1.0).to(spread.dtype)
        cos, sin = dft_matrices(n, spread.dtype)
        re, im = (spread * scale) @ cos.T, (spread * scale) @ sin.T
        re = torch.cat([total * scale, re[..., 1:]], -1)
        return (norm(torch.stack([re, im], -1)) / scale).mean()
