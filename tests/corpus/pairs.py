"""Naive/stable pairs of numerical functions, each from a public bug report or post-mortem.

Calibration of the stable twins: the largest error measured, in units of the mode's
tolerance (the same tolerance for outputs and gradients); ``stft_magnitude_mse`` is listed
apart in the last column:

=========  =========  ===============  ==================  ==========================
mode       tolerance  output error     gradient error      gradient error, stft pair
=========  =========  ===============  ==================  ==========================
fp32       1e-4       0.63 / 0.027     2.45 / 1.83         9065 / 3750
fp16       1e-2       0.001 / 0.0007   0.061 / 0.045       84 / 42
bf16       5e-2       0.001 / 0.0001   0.078 / 0.075       18 / 7.5
amp-fp16   1e-2       0.0005 / 0.0007  0.047 / 0.044       45 / 43
amp-bf16   5e-2       0.001 / 0.0002   0.005 / 0.021       0.37 / 9.5
=========  =========  ===============  ==================  ==========================

Each cell is "harness / sweep": the worst figure of ``stress.fuzz`` (300 examples per mode,
two seeds, every pair; no finding on any stable twin) and of a plain-torch sweep (12 shapes x
11 adversarial patterns per mode: zeros, duplicates, domain bounds, a large common offset,
magnitudes from subnormal to 1e4, exact 0/1 probabilities, fully masked rows, the smallest
temperature). The largest fp32 output error is ``running_sum_low_precision`` (a float32 mean
of values up to 1e4 that cancels to ~0); the largest non-stft gradient error is
``soft_nn_alignment`` in the harness and ``mixture_density_nll`` in the sweep (Jacobians
that cancel terms of size |x - y|² / 0.1 and z² = ((t - mu) / sigma)², in float32).
``stft_magnitude_mse``'s gradient is discontinuous at a zero spectrum bin (its direction is
re/|X|): where float32 and float64 disagree about a bin that is almost 0, the gradient
differs by O(1), and only the harness's conditioning allowance excuses it. Soft-DTW and
Sinkhorn run their recursions in float64: in float32 their gradient errors at gamma = 1e-3
(eps = 0.05) were 5-50 tolerances, which input perturbations do not reveal.

Each ``Pair`` holds the function as commonly written (``naive``) and the same mathematical
function written the way an expert would (``stable``): max-subtraction, logsumexp /
log_softmax, softplus / logsigmoid, two-pass variance, a scaled norm whose gradient is 0 at 0,
statistics in float32 with autocast off, an eps that float16 can represent. Where the naive
function is undefined (0/0 on an empty mask, softmax over a fully masked row, a norm at 0) the
stable one takes the natural convention, said in its docstring. ``triggers`` holds, per mode in
``fails_in``, a small input on which the naive version fails in that mode, and ``failure`` the
kind of failure it shows there (see ``plain.FAILURE_KINDS``).

``torch.cdist`` and ``torch.fft`` have no float16/bfloat16 CPU kernels: distances are explicit
differences and DFTs are matmuls.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from stress import st

__all__ = ["ALL_MODES", "PAIRS", "Pair"]

ALL_MODES: frozenset[str] = frozenset({"fp32", "fp16", "bf16", "amp-fp16", "amp-bf16"})
_TINY = torch.finfo(torch.float32).tiny  # below it, a clamp_min passes no gradient


@dataclass(frozen=True, eq=False)
class Pair:
    """A naive function, its stable twin, the domain a caller has, and inputs that break it."""

    name: str
    category: str
    source: str
    naive: Callable[..., Tensor]
    stable: Callable[..., Tensor]
    strategies: Callable[[], dict[str, Any]]
    fails_in: frozenset[str]
    triggers: Mapping[str, Mapping[str, Any]]
    failure: Mapping[str, str]
    dims: Mapping[str, tuple[int, int]] | None = None
    wrt: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"Pair({self.name})"


def T(data: Any, dtype: torch.dtype | None = None) -> Tensor:
    """A literal tensor (float32 for floats; int64 or bool as written)."""
    return torch.tensor(data, dtype=dtype)


def _up(x: Tensor) -> Tensor:
    """float16/bfloat16 to float32; float32 and float64 unchanged (the float64 reference of a
    stable twin stays in float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _full(x: Tensor) -> contextlib.AbstractContextManager[None]:
    """Leave autocast: the stable twins compute their statistics and matmuls in float32."""
    return torch.autocast(x.device.type, enabled=False)


def _norm(d: Tensor) -> Tensor:
    """Euclidean norm over the last dim. Rows whose entries are all below 2^-60 are scaled by
    2^100 first (exact: a power of two), so their squares do not underflow; the gradient of
    ``vector_norm`` at 0 is 0 (the natural subgradient)."""
    small = d.detach().abs().amax(-1, keepdim=True) < 2.0**-60
    scale = torch.where(small, 2.0**100, 1.0).to(d.dtype)
    return torch.linalg.vector_norm(d * scale, dim=-1) / scale.squeeze(-1)


def _dft(x: Tensor) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of ``rfft(x)`` as matmuls (no fp16/bf16 CPU kernel for fft)."""
    n = x.shape[-1]
    k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
    angle = 2 * math.pi * k * torch.arange(n, dtype=torch.float64)[None, :] / n
    # twiddles rounded to float32 once: float32 and the float64 reference use the same numbers
    cos, sin = torch.cos(angle).float(), (-torch.sin(angle)).float()
    return x @ cos.T.to(x.dtype), x @ sin.T.to(x.dtype)


def _same(trigger: Mapping[str, Any], *modes: str) -> dict[str, Mapping[str, Any]]:
    return dict.fromkeys(modes, trigger)


# ============================================================================ softmax family


def softmax_naive(x: Tensor) -> Tensor:
    e = x.exp()
    return e / e.sum(-1, keepdim=True)


def softmax_stable(x: Tensor) -> Tensor:
    with _full(x):
        return torch.softmax(_up(x), dim=-1)  # subtracts the row max


def logsumexp_naive(x: Tensor) -> Tensor:
    return x.exp().sum(-1).log()


def logsumexp_stable(x: Tensor) -> Tensor:
    with _full(x):
        return torch.logsumexp(_up(x), dim=-1)


def log_of_softmax_naive(x: Tensor) -> Tensor:
    return torch.softmax(x, dim=-1).log()


def log_of_softmax_stable(x: Tensor) -> Tensor:
    with _full(x):
        return F.log_softmax(_up(x), dim=-1)


_logits = dict(x=st.logits(("B", "C"), min_value=-1e4, max_value=1e4))

# ============================================================================ cross-entropy


def cross_entropy_naive(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.softmax(logits, dim=-1)
    return -p.gather(1, target[:, None]).log().mean()


def cross_entropy_stable(logits: Tensor, target: Tensor) -> Tensor:
    with _full(logits):
        return F.cross_entropy(_up(logits), target)


def soft_target_ce_naive(logits: Tensor, target: Tensor) -> Tensor:
    return -(target * torch.log(torch.softmax(logits, dim=-1))).sum(-1).mean()


def soft_target_ce_stable(logits: Tensor, target: Tensor) -> Tensor:
    with _full(logits):
        return -(_up(target) * F.log_softmax(_up(logits), dim=-1)).sum(-1).mean()


def sequence_logprob_naive(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.softmax(logits, dim=-1).gather(-1, target[..., None]).squeeze(-1)
    return torch.log(p.prod(-1)).mean()


def sequence_logprob_stable(logits: Tensor, target: Tensor) -> Tensor:
    with _full(logits):
        logp = F.log_softmax(_up(logits), dim=-1).gather(-1, target[..., None]).squeeze(-1)
        return logp.sum(-1).mean()  # log of a product is a sum of logs


# ============================================================================ norms / cosine


def pixel_norm_naive(x: Tensor) -> Tensor:
    return x * (x.square().mean(dim=-1, keepdim=True) + 1e-8).rsqrt()


def pixel_norm_stable(x: Tensor) -> Tensor:
    with _full(x):
        xf = _up(x)  # 1e-8 is a float32 number; in float16 it is 0
        return xf * (xf.square().mean(dim=-1, keepdim=True) + 1e-8).rsqrt()


def cosine_naive(x: Tensor, y: Tensor) -> Tensor:
    return (x * y).sum(-1) / torch.sqrt(((x * x).sum(-1) + 1e-8) * ((y * y).sum(-1) + 1e-8))


def cosine_stable(x: Tensor, y: Tensor) -> Tensor:
    with _full(x):
        xf, yf = _up(x), _up(y)
        # each vector normalised on its own: neither |x|²·|y|² nor eps² underflows
        xn = xf * ((xf * xf).sum(-1, keepdim=True) + 1e-8).rsqrt()
        yn = yf * ((yf * yf).sum(-1, keepdim=True) + 1e-8).rsqrt()
        return (xn * yn).sum(-1)


def rms_norm_naive(x: Tensor) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def rms_norm_stable(x: Tensor) -> Tensor:
    with _full(x):
        xf = _up(x)  # as LlamaRMSNorm: the second moment in float32
        return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)


# ============================================================================ distances


def pairwise_sqrt_naive(x: Tensor, y: Tensor) -> Tensor:
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).sqrt().mean()


def pairwise_sqrt_stable(x: Tensor, y: Tensor) -> Tensor:
    """The mean Euclidean distance; its gradient at distance 0 is 0 (the subgradient)."""
    with _full(x):
        return _norm(_up(x)[:, None, :] - _up(y)[None, :, :]).mean()


def pairwise_expanded_naive(x: Tensor, y: Tensor) -> Tensor:
    d2 = (x * x).sum(-1)[:, None] + (y * y).sum(-1)[None, :] - 2 * x @ y.T
    return d2.clamp_min(0).sqrt().mean()


_emb = dict(
    x=st.embeddings(("N", "D"), min_value=-100, max_value=100),
    y=st.embeddings(("M", "D"), min_value=-100, max_value=100),
)

# ============================================================================ contrastive

# contrastive losses take projections of unit scale (normalised, or nearly): |x_d| <= 1
_unit_emb = dict(
    x=st.embeddings(("B", "D"), min_value=-1, max_value=1),
    y=st.embeddings(("B", "D"), min_value=-1, max_value=1),
)


def info_nce_naive(x: Tensor, y: Tensor, temp: float) -> Tensor:
    logits = x @ y.T / temp
    return -(logits.diag() - logits.exp().sum(1).log()).mean()


def info_nce_stable(x: Tensor, y: Tensor, temp: float) -> Tensor:
    """Cross-entropy on the logits relative to each row's positive, x_i·(y_j - y_i) / temp:
    the same loss (log-softmax is shift-invariant), without the float32 rounding of logits
    that are large only because the embeddings are."""
    with _full(x):
        xf, yf = _up(x), _up(y)
        rel = (xf[:, None, :] * (yf[None, :, :] - yf[:, None, :])).sum(-1) / temp
        return torch.logsumexp(rel, dim=1).mean()  # rel[i, i] = 0 is the positive


def nt_xent_naive(x: Tensor, y: Tensor, temp: float) -> Tensor:
    z = torch.cat([x, y])
    n, b = z.shape[0], x.shape[0]
    sim = torch.exp(z @ z.T / temp)
    sim = sim * (1 - torch.eye(n, dtype=sim.dtype, device=sim.device))  # drop self-similarity
    pos = torch.cat([sim.diagonal(b), sim.diagonal(-b)])
    return -torch.log(pos / sim.sum(1)).mean()


def nt_xent_stable(x: Tensor, y: Tensor, temp: float) -> Tensor:
    """Cross-entropy over the other 2B - 1 views, masked before the exp, on the logits
    relative to the positive (as in ``info_nce_stable``)."""
    with _full(x):
        z = torch.cat([_up(x), _up(y)])
        n, b = z.shape[0], x.shape[0]
        positive = z[(torch.arange(n, device=z.device) + b) % n]
        rel = (z[:, None, :] * (z[None, :, :] - positive[:, None, :])).sum(-1) / temp
        eye = torch.eye(n, dtype=torch.bool, device=z.device)
        return torch.logsumexp(rel.masked_fill(eye, float("-inf")), dim=1).mean()


def triplet_naive(anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
    d_ap = ((anchor - positive) ** 2).sum(-1).sqrt()
    d_an = ((anchor - negative) ** 2).sum(-1).sqrt()
    return torch.log(1 + torch.exp(d_ap - d_an)).mean()


def triplet_stable(anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
    with _full(anchor):
        a, p, n = _up(anchor), _up(positive), _up(negative)
        return F.softplus(_norm(a - p) - _norm(a - n)).mean()


# ============================================================================ alignment


def soft_nn_naive(x: Tensor, y: Tensor) -> Tensor:
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    alpha = torch.exp(-d2 / 0.1)
    alpha = alpha / alpha.sum(1, keepdim=True)
    return ((x - alpha @ y) ** 2).sum(-1).mean()


def soft_nn_stable(x: Tensor, y: Tensor) -> Tensor:
    with _full(x):
        xf, yf = _up(x), _up(y)
        d2 = ((xf[:, None, :] - yf[None, :, :]) ** 2).sum(-1)
        alpha = torch.softmax(-d2 / 0.1, dim=1)  # max-subtracted: the normaliser is >= 1
        return ((xf - alpha @ yf) ** 2).sum(-1).mean()


# ============================================================================ variance / norms


def std_naive(x: Tensor) -> Tensor:
    return ((x * x).mean(-1) - x.mean(-1) ** 2).sqrt()


def std_stable(x: Tensor) -> Tensor:
    """Two-pass standard deviation of the row shifted by its first element (exact for
    nearby values, so a large common offset cancels before anything is squared); the
    gradient at a constant row is 0 (the subgradient)."""
    with _full(x):
        xf = _up(x)
        xf = xf - xf[..., :1]  # the standard deviation is shift-invariant
        d = xf - xf.mean(-1, keepdim=True)
        var = (d * d).mean(-1)
        return var.clamp_min(_TINY).sqrt()  # below tiny the clamp passes no gradient


def layer_norm_naive(x: Tensor) -> Tensor:
    mu = x.mean(-1, keepdim=True)
    var = (x * x).mean(-1, keepdim=True) - mu * mu
    return (x - mu) / torch.sqrt(var + 1e-5)


def layer_norm_stable(x: Tensor) -> Tensor:
    with _full(x):
        xf = _up(x)
        # LayerNorm is shift-invariant: subtracting the first element (exact for nearby
        # values) removes a large common offset before the statistics
        return F.layer_norm(xf - xf[..., :1], x.shape[-1:], eps=1e-5)


_acts = dict(x=st.activations(("B", "D"), min_value=-1e4, max_value=1e4))

# ============================================================================ BCE / focal / Dice


def bce_naive(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.sigmoid(logits)
    t = target.to(p.dtype)
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()


def bce_stable(logits: Tensor, target: Tensor) -> Tensor:
    with _full(logits):
        x = _up(logits)
        return F.binary_cross_entropy_with_logits(x, target.to(x.dtype))


def focal_naive(logits: Tensor, target: Tensor, gamma: float) -> Tensor:
    p = torch.sigmoid(logits)
    t = target.to(p.dtype)
    pt = p * t + (1 - p) * (1 - t)
    return (-((1 - pt) ** gamma) * torch.log(pt)).mean()


def focal_stable(logits: Tensor, target: Tensor, gamma: float) -> Tensor:
    with _full(logits):
        x = _up(logits)
        z = x * (2 * target.to(x.dtype) - 1)  # pt = sigmoid(z)
        ce = F.softplus(-z)  # -log(pt)
        weight = torch.exp(gamma * F.logsigmoid(-z))  # (1 - pt) ** gamma, no 0 ** (gamma - 1)
        return (weight * ce).mean()


_binary = dict(
    logits=st.logits(("B",), min_value=-1e3, max_value=1e3),
    target=st.targets(("B",), num_classes=2),
)


def dice_naive(probs: Tensor, target: Tensor) -> Tensor:
    t = target.to(probs.dtype)
    return (1 - 2 * (probs * t).sum(-1) / (probs.sum(-1) + t.sum(-1))).mean()


def dice_stable(probs: Tensor, target: Tensor) -> Tensor:
    """Dice loss; an empty prediction on an empty mask scores a perfect Dice of 1."""
    with _full(probs):
        p = _up(probs)
        t = target.to(p.dtype)
        den = p.sum(-1) + t.sum(-1)
        # den < 1 only when the mask is empty, where the intersection is 0: the clamp changes
        # no value and keeps the untaken branch's gradient finite
        dice = torch.where(den > 0, 2 * (p * t).sum(-1) / den.clamp_min(1.0), 1.0)
        return (1 - dice).mean()


# ============================================================================ soft-DTW


def _soft_dtw(cost: Tensor, softmin: Callable[[Tensor], Tensor]) -> Tensor:
    t, s = cost.shape
    inf = torch.tensor(math.inf, dtype=cost.dtype, device=cost.device)
    r: list[list[Tensor]] = [[inf] * (s + 1) for _ in range(t + 1)]
    r[0][0] = torch.zeros((), dtype=cost.dtype, device=cost.device)
    for i in range(1, t + 1):
        for j in range(1, s + 1):
            r[i][j] = cost[i - 1, j - 1] + softmin(
                torch.stack([r[i - 1][j - 1], r[i - 1][j], r[i][j - 1]])
            )
    return r[t][s]


def soft_dtw_naive(x: Tensor, y: Tensor, gamma: float) -> Tensor:
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return _soft_dtw(cost, lambda r: -gamma * torch.log(torch.exp(-r / gamma).sum()))


def soft_dtw_stable(x: Tensor, y: Tensor, gamma: float) -> Tensor:
    """A logsumexp softmin. The recursion runs in float64, as mblondel/soft-dtw's does: the
    softmin weights are exp(-(r_k - r_min) / gamma), and float32's rounding of accumulated
    costs of ~1e3 is a large error in the exponent when gamma is 1e-3."""
    with _full(x):
        cost = ((x.double()[:, None, :] - y.double()[None, :, :]) ** 2).sum(-1)
        return _soft_dtw(cost, lambda r: -gamma * torch.logsumexp(-r / gamma, dim=0))


# ============================================================================ KL / JS / entropy


def entropy_naive(logits: Tensor) -> Tensor:
    p = torch.softmax(logits, dim=-1)
    return -(p * p.log()).sum(-1)


def entropy_stable(logits: Tensor) -> Tensor:
    with _full(logits):
        logp = F.log_softmax(_up(logits), dim=-1)
        return -(logp.exp() * logp).sum(-1)


def kl_naive(target: Tensor, logits: Tensor) -> Tensor:
    return (target * (target.log() - torch.softmax(logits, dim=-1).log())).sum(-1).mean()


def kl_stable(target: Tensor, logits: Tensor) -> Tensor:
    """KL(target || softmax(logits)), with 0 · log 0 = 0."""
    with _full(logits):
        p = _up(target)
        return (torch.xlogy(p, p) - p * F.log_softmax(_up(logits), dim=-1)).sum(-1).mean()


def js_naive(a: Tensor, b: Tensor) -> Tensor:
    p, q = torch.softmax(a, dim=-1), torch.softmax(b, dim=-1)
    m = 0.5 * (p + q)
    return (0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)).mean()


def js_stable(a: Tensor, b: Tensor) -> Tensor:
    with _full(a):
        lp, lq = F.log_softmax(_up(a), dim=-1), F.log_softmax(_up(b), dim=-1)
        lm = torch.logaddexp(lp, lq) - math.log(2.0)  # log of the mixture, in log space
        js = 0.5 * (lp.exp() * (lp - lm)).sum(-1) + 0.5 * (lq.exp() * (lq - lm)).sum(-1)
        return js.mean()


# ============================================================================ VAE / Gaussian NLL


def vae_kl_naive(mu: Tensor, logvar: Tensor) -> Tensor:
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def vae_kl_stable(mu: Tensor, logvar: Tensor) -> Tensor:
    with _full(mu):
        m, lv = _up(mu), _up(logvar)
        return -0.5 * torch.sum(1 + lv - m.pow(2) - lv.exp())


def mdn_naive(pi_logits: Tensor, mu: Tensor, log_sigma: Tensor, target: Tensor) -> Tensor:
    sigma = torch.exp(log_sigma)
    pi = torch.softmax(pi_logits, dim=-1)
    pdf = torch.exp(-0.5 * ((target - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return -torch.log((pi * pdf).sum(-1)).mean()


def mdn_stable(pi_logits: Tensor, mu: Tensor, log_sigma: Tensor, target: Tensor) -> Tensor:
    with _full(mu):
        ls = _up(log_sigma)
        z = (_up(target) - _up(mu)) * torch.exp(-ls)
        log_pdf = -0.5 * z**2 - ls - 0.5 * math.log(2 * math.pi)
        return -torch.logsumexp(F.log_softmax(_up(pi_logits), dim=-1) + log_pdf, -1).mean()


# ============================================================================ spectral


def stft_mag_naive(x: Tensor, y: Tensor) -> Tensor:
    (xr, xi), (yr, yi) = _dft(x), _dft(y)
    mx, my = torch.sqrt(xr**2 + xi**2), torch.sqrt(yr**2 + yi**2)
    return ((mx - my) ** 2).mean()


def _magnitudes(x: Tensor) -> Tensor:
    """|rfft(x)| per bin. The DFT is linear: a row of tiny (subnormal) samples is scaled by
    2^100 first, exactly, so the bins keep their direction; the row's mean is taken out first
    (it only feeds bin 0, added back as n·mean), so a near-constant row's other bins come from
    exact differences instead of cancelling to rounding noise; the magnitude is a scaled norm of
    (re, im), with no overflow of re² and gradient 0 at a zero bin."""
    small = x.detach().abs().amax(-1, keepdim=True) < 2.0**-60
    scale = torch.where(small, 2.0**100, 1.0).to(x.dtype)
    xs = x * scale
    mean = xs.mean(-1, keepdim=True)
    re, im = _dft(xs - mean)
    dc = torch.zeros_like(re)
    dc[..., 0] = 1.0
    re = re + dc * (mean * xs.shape[-1])
    return _norm(torch.stack([re, im], -1)) / scale


def stft_mag_stable(x: Tensor, y: Tensor) -> Tensor:
    """The fix of pytorch/audio#1013 is the complex abs, whose gradient is 0 at a zero bin
    (but NaN at subnormal bins); ``_magnitudes`` keeps that and handles tiny signals."""
    with _full(x):
        return ((_magnitudes(_up(x)) - _magnitudes(_up(y))) ** 2).mean()


# ============================================================================ attention


def attention_inf_naive(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    s = q @ k.T / math.sqrt(q.shape[-1])
    s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def attention_inf_stable(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Masked attention; a query whose keys are all masked gets the output 0."""
    with _full(q):
        s = _up(q) @ _up(k).T / math.sqrt(q.shape[-1])
        s = s.masked_fill(~mask, torch.finfo(s.dtype).min)  # finite: no -inf - (-inf)
        a = torch.softmax(s, dim=-1) * mask  # zero the rows that had nothing to attend to
        return a @ _up(v)


def attention_1e9_naive(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    s = q @ k.T / math.sqrt(q.shape[-1])
    s = s + (~mask).to(s.dtype) * -1e9
    return torch.softmax(s, dim=-1) @ v


def attention_1e9_stable(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """The additive -1e9 mask's own semantics, exactly and in every dtype: masked keys get
    weight 0 unless every key of the row is masked, in which case all keys attend."""
    with _full(q):
        s = _up(q) @ _up(k).T / math.sqrt(q.shape[-1])
        keep = mask | ~mask.any(-1, keepdim=True)
        s = s.masked_fill(~keep, torch.finfo(s.dtype).min)
        return torch.softmax(s, dim=-1) @ _up(v)


_attn = dict(
    q=st.embeddings(("T", "D"), min_value=-10, max_value=10),
    k=st.embeddings(("S", "D"), min_value=-10, max_value=10),
    v=st.embeddings(("S", "D"), min_value=-10, max_value=10),
    mask=st.masks(("T", "S")),
)

# ============================================================================ elementwise


def softplus_naive(x: Tensor) -> Tensor:
    return torch.log(1 + torch.exp(x))


def softplus_stable(x: Tensor) -> Tensor:
    with _full(x):
        return F.softplus(_up(x))


def log_cosh_naive(pred: Tensor, target: Tensor) -> Tensor:
    return torch.log(torch.cosh(pred - target)).mean()


def log_cosh_stable(pred: Tensor, target: Tensor) -> Tensor:
    with _full(pred):
        d = _up(pred) - _up(target)
        return (d + F.softplus(-2 * d) - math.log(2.0)).mean()  # log cosh d, no cosh overflow


def dpo_naive(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
) -> Tensor:
    z = beta * ((policy_chosen - policy_rejected) - (ref_chosen - ref_rejected))
    return -torch.log(torch.sigmoid(z)).mean()


def dpo_stable(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
) -> Tensor:
    with _full(policy_chosen):
        pc, pr = _up(policy_chosen), _up(policy_rejected)
        rc, rr = _up(ref_chosen), _up(ref_rejected)
        return -F.logsigmoid(beta * ((pc - pr) - (rc - rr))).mean()


_logps = st.tensors(("B",), min_value=-1e4, max_value=0.0)

# ============================================================================ angular / hyperbolic

_ARC_S, _ARC_M = 64.0, 0.5


def arcface_naive(cosine: Tensor, target: Tensor) -> Tensor:
    theta = torch.acos(cosine)
    one_hot = F.one_hot(target, cosine.shape[-1]).to(cosine.dtype)
    logits = _ARC_S * (one_hot * torch.cos(theta + _ARC_M) + (1 - one_hot) * cosine)
    return F.cross_entropy(logits, target)


def arcface_stable(cosine: Tensor, target: Tensor) -> Tensor:
    with _full(cosine):
        c = _up(cosine)
        # cos(acos(c) + m) = c cos m - sin m sqrt(1 - c²); at c = ±1 the clamp passes no
        # gradient instead of acos' infinite one
        sine = ((1 - c) * (1 + c)).clamp_min(_TINY).sqrt()
        phi = c * math.cos(_ARC_M) - sine * math.sin(_ARC_M)
        one_hot = F.one_hot(target, c.shape[-1]).bool()
        return F.cross_entropy(_ARC_S * torch.where(one_hot, phi, c), target)


def poincare_naive(u: Tensor, v: Tensor) -> Tensor:
    sq = ((u - v) ** 2).sum(-1)
    nu, nv = (u * u).sum(-1), (v * v).sum(-1)
    return torch.acosh(1 + 2 * sq / ((1 - nu) * (1 - nv))).mean()


def poincare_stable(u: Tensor, v: Tensor) -> Tensor:
    with _full(u):
        uf, vf = _up(u), _up(v)
        nu, nv = (uf * uf).sum(-1), (vf * vf).sum(-1)
        # acosh(1 + 2t²) = 2 asinh(t): no acosh'(1) = inf, no 1 + tiny rounding to 1
        t = _norm(uf - vf) / torch.sqrt((1 - nu) * (1 - nv))
        return (2 * torch.asinh(t)).mean()


# ============================================================================ optimal transport

_SINKHORN_ITERS = 10


def sinkhorn_naive(x: Tensor, y: Tensor, eps: float) -> Tensor:
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    kernel = torch.exp(-cost / eps)
    a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=x.dtype, device=x.device)
    b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=x.dtype, device=x.device)
    u, v = torch.ones_like(a), torch.ones_like(b)
    for _ in range(_SINKHORN_ITERS):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
    plan = u[:, None] * kernel * v[None, :]
    return (plan * cost).sum()


def sinkhorn_stable(x: Tensor, y: Tensor, eps: float) -> Tensor:
    """The same iterations in the log domain: u = exp(f/eps), v = exp(g/eps). They run in
    float64: the unrolled gradient cancels terms of size cost/eps (~1e2 here), more than
    float32 can afford for the harness's tolerance."""
    with _full(x):
        xf, yf = x.double(), y.double()
        cost = ((xf[:, None, :] - yf[None, :, :]) ** 2).sum(-1)
        log_a, log_b = -math.log(x.shape[0]), -math.log(y.shape[0])
        f = cost.new_zeros(x.shape[0])
        g = cost.new_zeros(y.shape[0])
        for _ in range(_SINKHORN_ITERS):
            f = eps * log_a - eps * torch.logsumexp((g[None, :] - cost) / eps, dim=1)
            g = eps * log_b - eps * torch.logsumexp((f[:, None] - cost) / eps, dim=0)
        plan = torch.exp((f[:, None] + g[None, :] - cost) / eps)
        return (plan * cost).sum()


# ============================================================================ reductions


def running_mean_naive(x: Tensor) -> Tensor:
    total = torch.zeros((), dtype=x.dtype, device=x.device)
    for value in x.unbind(0):  # an accumulator in the tensor's own dtype
        total = total + value
    return total / x.shape[0]


def running_mean_stable(x: Tensor) -> Tensor:
    """Accumulate in a wider dtype: float32 for 16-bit inputs, float64 for float32 ones (a float32
    sum of values up to 1e4 that cancel to ~0 loses 1e-4 of absolute accuracy)."""
    with _full(x):
        wide = torch.float64 if x.dtype in (torch.float32, torch.float64) else torch.float32
        return (x.sum(dtype=wide) / x.shape[0]).to(_up(x).dtype)


def mse_naive(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).sum() / pred.numel()


def mse_stable(pred: Tensor, target: Tensor) -> Tensor:
    with _full(pred):
        return F.mse_loss(_up(pred), _up(target))


def mean_pool_naive(hidden: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)


def mean_pool_stable(hidden: Tensor, mask: Tensor) -> Tensor:
    with _full(hidden):
        h = _up(hidden)
        m = mask.unsqueeze(-1).to(h.dtype)
        # the count is an integer: max(count, 1e-9) and max(count, 1) are the same number
        # for count >= 1, and at count 0 the sum is 0 either way
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


def gram_naive(features: Tensor) -> Tensor:
    return (features @ features.T) / features.numel()


def gram_stable(features: Tensor) -> Tensor:
    with _full(features):
        f = _up(features)
        return (f @ f.T) / f.numel()


# ============================================================================ the corpus

_N = "nonfinite_output"
_G = "nonfinite_gradient"
_E = "error"
_AMP = ("amp-fp16", "amp-bf16")
_FP32_LIKE = ("fp32", "amp-fp16", "amp-bf16")  # amp keeps elementwise ops and reductions in float32

PAIRS: tuple[Pair, ...] = (
    # ------------------------------------------------------------------ softmax family
    Pair(
        name="softmax_exp_normalize",
        category="softmax",
        source="psychopa4/PFNL#9: softmax written as exp(f) / sum(exp(f)) goes to inf for "
        "scores around 300 (also deeplearning4j/deeplearning4j#6039, the same op without the "
        "max subtraction)",
        naive=softmax_naive,
        stable=softmax_stable,
        strategies=lambda: dict(_logits),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(x=T([[100.0, 0.0]])), "fp32", "bf16", *_AMP),
            "fp16": dict(x=T([[12.0, 0.0]])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="logsumexp_exp_sum_log",
        category="log-sum-exp",
        source="mlberkeley/scae-pytorch#4: the loss goes NaN because exp overflows inside "
        "log_prob; fixed with torch.logsumexp",
        naive=logsumexp_naive,
        stable=logsumexp_stable,
        strategies=lambda: dict(_logits),
        fails_in=ALL_MODES,
        triggers={
            "fp32": dict(x=T([[-200.0, -200.0]])),  # every exp underflows: log(0)
            "fp16": dict(x=T([[12.0, 0.0]])),  # exp(12) > 65504
            "bf16": dict(x=T([[-200.0, -200.0]])),
            **_same(dict(x=T([[100.0, 0.0]])), *_AMP),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="log_of_softmax",
        category="log_softmax",
        source="bowang-lab/Transformer-GCN-QA#22: NaN from a softmax followed by log, fixed by "
        "switching to LogSoftmax (also summerlvsong/Aggregation-Cross-Entropy#2, log of a "
        "softmax score that is 0)",
        naive=log_of_softmax_naive,
        stable=log_of_softmax_stable,
        strategies=lambda: dict(_logits),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(x=T([[0.0, -200.0]])), *_FP32_LIKE),
            "fp16": dict(x=T([[0.0, -20.0]])),
            "bf16": dict(x=T([[0.0, -100.0]])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="entropy_of_softmax",
        category="entropy",
        source="kkirchheim/pytorch-ood#84: the entropy detector returns NaN because softmax "
        "outputs exactly 0.0 and 0 * log(0) is NaN",
        naive=entropy_naive,
        stable=entropy_stable,
        strategies=lambda: dict(logits=st.logits(("B", "C"), min_value=-1e4, max_value=1e4)),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(logits=T([[0.0, -200.0]])), *_FP32_LIKE),
            "fp16": dict(logits=T([[0.0, -20.0]])),
            "bf16": dict(logits=T([[0.0, -100.0]])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    # ------------------------------------------------------------------ cross-entropy
    Pair(
        name="cross_entropy_by_hand",
        category="cross-entropy",
        source="tensorflow/models#181: a hand-written cross-entropy goes NaN once the true "
        "class's probability reaches 0; fixed with softmax_cross_entropy_with_logits",
        naive=cross_entropy_naive,
        stable=cross_entropy_stable,
        strategies=lambda: dict(
            logits=st.logits(("B", "C"), min_value=-1e4, max_value=1e4),
            target=st.targets(("B",), num_classes="C"),
        ),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(logits=T([[0.0, 200.0]]), target=T([0])), *_FP32_LIKE),
            "fp16": dict(logits=T([[0.0, 20.0]]), target=T([0])),
            "bf16": dict(logits=T([[0.0, 100.0]]), target=T([0])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="soft_target_cross_entropy",
        category="cross-entropy",
        source="OpenBMB/ModelCenter#14: distillation cross-entropy -(p_t * log p_s) is NaN "
        "where a probability is exactly 0 (0 * -inf)",
        naive=soft_target_ce_naive,
        stable=soft_target_ce_stable,
        strategies=lambda: dict(
            logits=st.logits(("B", "C"), min_value=-1e4, max_value=1e4),
            target=st.probabilities(("B", "C")),
        ),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(logits=T([[0.0, -200.0]]), target=T([[1.0, 0.0]])), *_FP32_LIKE),
            "fp16": dict(logits=T([[0.0, -20.0]]), target=T([[1.0, 0.0]])),
            "bf16": dict(logits=T([[0.0, -100.0]]), target=T([[1.0, 0.0]])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="sequence_logprob_product",
        category="log-probability",
        source="githubharald/CTCWordBeamSearch#23: multiplying per-step probabilities "
        "underflows for long sequences; sum log-probabilities instead",
        naive=sequence_logprob_naive,
        stable=sequence_logprob_stable,
        strategies=lambda: dict(
            logits=st.logits(("B", "L", "C"), min_value=-1e4, max_value=1e4),
            target=st.targets(("B", "L"), num_classes="C"),
        ),
        dims={"L": (1, 8)},
        fails_in=ALL_MODES,
        triggers={
            # each factor e^-60 is a float32 number, their product e^-120 is not
            **_same(
                dict(logits=T([[[0.0, 60.0], [0.0, 60.0]]]), target=T([[0, 0]])),
                "fp32",
                "bf16",
                *_AMP,
            ),
            "fp16": dict(logits=T([[[0.0, 10.0], [0.0, 10.0]]]), target=T([[0, 0]])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    # ------------------------------------------------------------------ L2 normalize / cosine
    Pair(
        name="pixel_norm_eps_1e8",
        category="norms",
        source="NVlabs/stylegan2-ada-pytorch normalize_2nd_moment, x * (x.square().mean() + "
        "1e-8).rsqrt() (quoted in issue #133); 1e-8 is 0 in float16, as in "
        "pytorch/pytorch#32137 (F.normalize's eps too small for half precision)",
        naive=pixel_norm_naive,
        stable=pixel_norm_stable,
        strategies=lambda: dict(x=st.activations(("B", "D"), min_value=-100, max_value=100)),
        fails_in=frozenset({"fp16"}),
        triggers={"fp16": dict(x=T([[0.0, 0.0]]))},  # 0 * rsqrt(0 + 0) = 0 * inf
        failure={"fp16": _N},
    ),
    Pair(
        name="cosine_similarity_eps",
        category="norms",
        source="pytorch/pytorch#69512: cosine similarity of a float16 vector with itself comes "
        "out 0; tracel-ai/burn#5584: the product of the eps-clamped norms underflows to 0, "
        "giving 0/0",
        naive=cosine_naive,
        stable=cosine_stable,
        strategies=lambda: dict(
            x=st.embeddings(("B", "D"), min_value=-100, max_value=100),
            y=st.embeddings(("B", "D"), min_value=-100, max_value=100),
        ),
        fails_in=frozenset({"fp16", "bf16"}),
        triggers={
            # a vector with itself at norm 1.4e-3: |x|²·|y|² = 4e-12 underflows, 2e-6 / 0 = inf
            "fp16": dict(x=T([[1e-3, 1e-3]]), y=T([[1e-3, 1e-3]])),
            # the gradient w.r.t. y (9.87) is the difference of two terms of ~1/|y| = 1e3:
            # bfloat16's 8 bits keep none of it (0)
            "bf16": dict(x=T([[1.0]]), y=T([[1e-3]])),
        },
        failure={"fp16": _N, "bf16": "gradient_error"},
    ),
    Pair(
        name="rms_norm_fp16",
        category="layernorm",
        source="pytorch/pytorch#133085: nn.RMSNorm overflows computing input.pow(2) in "
        "float16 and gives wrong answers; LlamaRMSNorm upcasts to float32 first",
        naive=rms_norm_naive,
        stable=rms_norm_stable,
        strategies=lambda: dict(_acts),
        fails_in=frozenset({"fp16"}),
        triggers={"fp16": dict(x=T([[300.0, 300.0]]))},  # 9e4 -> inf, x * rsqrt(inf) = 0
        failure={"fp16": _E},
    ),
    # ------------------------------------------------------------------ distances
    Pair(
        name="pairwise_distance_sqrt",
        category="distances",
        source="pytorch/pytorch#2421: the gradient of a zero norm is NaN (sqrt's infinite "
        "derivative at 0 times 0), hit by identical points",
        naive=pairwise_sqrt_naive,
        stable=pairwise_sqrt_stable,
        strategies=lambda: dict(_emb),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(x=T([[1.0, 2.0]]), y=T([[1.0, 2.0]])), "fp32", "bf16", *_AMP),
            # (200)² + (200)² = 8e4 > 65504
            "fp16": dict(x=T([[100.0, 100.0]]), y=T([[-100.0, -100.0]])),
        },
        failure={**dict.fromkeys(ALL_MODES, _G), "fp16": _N},
    ),
    Pair(
        name="pairwise_distance_expanded",
        category="distances",
        source="pytorch/pytorch#37154: torch.cdist gives NaN gradients since PyTorch 1.5, which "
        "computes |x|² + |y|² - 2 x·y with a matmul and clamps before the sqrt",
        naive=pairwise_expanded_naive,
        stable=pairwise_sqrt_stable,
        strategies=lambda: dict(_emb),
        fails_in=ALL_MODES,
        triggers={
            # 200 - 2·100.05 cancels: d = 0.01 comes out with an error of ~4e-4
            "fp32": dict(x=T([[10.0, 10.0]]), y=T([[10.0, 10.01]])),
            "fp16": dict(x=T([[100.0, 100.0]]), y=T([[-100.0, -100.0]])),
            "bf16": dict(x=T([[1.0, 1.0]]), y=T([[1.0, 1.1]])),
            # x·y = -7e4 overflows the float16 matmul
            "amp-fp16": dict(x=T([[100.0] * 7]), y=T([[-100.0] * 7])),
            "amp-bf16": dict(x=T([[1.0, 1.0]]), y=T([[1.0, 1.01]])),
        },
        failure={"fp32": _E, "fp16": _N, "bf16": _E, "amp-fp16": _N, "amp-bf16": _E},
    ),
    # ------------------------------------------------------------------ contrastive
    Pair(
        name="info_nce_temperature",
        category="contrastive",
        source="yichen928/ActiveFT#4: 'ExpBackward returned nan values': exp(x·c / 0.07) "
        "overflows; this project's seed 002 (InfoNCE at temperature 0.07)",
        naive=info_nce_naive,
        stable=info_nce_stable,
        strategies=lambda: dict(_unit_emb, temp=st.temperatures(0.01, 1.0)),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(x=T([[1.0]]), y=T([[1.0]]), temp=0.01), "fp32", "bf16", "amp-bf16"),
            # 1 / 0.07 = 14.3 and exp(14.3) > 65504
            **_same(dict(x=T([[1.0]]), y=T([[1.0]]), temp=0.07), "fp16", "amp-fp16"),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="nt_xent_exp_then_mask",
        category="contrastive",
        source="Lightning-Universe/lightning-bolts#811: SimCLR nt_xent_loss overflows at low "
        "temperature (e ** (1 / temperature)); here the self-similarity is masked after the exp "
        "and inf * 0 is NaN",
        naive=nt_xent_naive,
        stable=nt_xent_stable,
        strategies=lambda: dict(_unit_emb, temp=st.temperatures(0.01, 1.0)),
        fails_in=ALL_MODES,
        triggers={
            **_same(
                dict(x=T([[1.0, 0.0]]), y=T([[0.0, 1.0]]), temp=0.01), "fp32", "bf16", "amp-bf16"
            ),
            **_same(dict(x=T([[1.0, 0.0]]), y=T([[0.0, 1.0]]), temp=0.07), "fp16", "amp-fp16"),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="soft_margin_triplet",
        category="contrastive",
        source="huggingface/sentence-transformers#4033: identical anchor and positive "
        "embeddings give NaN gradients in TripletLoss (sqrt at distance 0); the soft margin "
        "log(1 + exp(d)) overflows as in rushter/MLAlgorithms#30",
        naive=triplet_naive,
        stable=triplet_stable,
        strategies=lambda: dict(
            anchor=st.embeddings(("B", "D"), min_value=-100, max_value=100),
            positive=st.embeddings(("B", "D"), min_value=-100, max_value=100),
            negative=st.embeddings(("B", "D"), min_value=-100, max_value=100),
        ),
        fails_in=ALL_MODES,
        triggers={
            "fp32": dict(anchor=T([[0.0]]), positive=T([[100.0]]), negative=T([[0.0]])),
            "fp16": dict(anchor=T([[0.0]]), positive=T([[12.0]]), negative=T([[0.0]])),
            **_same(
                dict(anchor=T([[1.0, 2.0]]), positive=T([[1.0, 2.0]]), negative=T([[0.0, 0.0]])),
                "bf16",
                *_AMP,
            ),
        },
        failure={**dict.fromkeys(ALL_MODES, _G), "fp32": _N, "fp16": _N},
    ),
    # ------------------------------------------------------------------ alignment
    Pair(
        name="soft_nn_alignment",
        category="alignment",
        source="the GTCC alignment post-mortem (this project's suites/seeds.py, seed 000): "
        "soft nearest neighbours exp(-dist / 0.1) normalised by their sum, as in temporal "
        "cycle-consistency (TCC); every exp underflows and the normaliser is 0/0",
        naive=soft_nn_naive,
        stable=soft_nn_stable,
        strategies=lambda: dict(
            x=st.embeddings(("N", "D"), min_value=-2, max_value=2),
            y=st.embeddings(("M", "D"), min_value=-2, max_value=2),
        ),
        fails_in=ALL_MODES,
        triggers={
            # squared distance 12: exp(-120) is 0 in float32, 7.7e-53 in float64
            **_same(dict(x=T([[1.0, 1.0, 1.0]]), y=T([[-1.0, -1.0, -1.0]])), "fp32", "bf16", *_AMP),
            "fp16": dict(x=T([[0.0]]), y=T([[2.0]])),  # exp(-40) is 0 in float16
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    # ------------------------------------------------------------------ variance / LayerNorm
    Pair(
        name="std_second_moment",
        category="variance",
        source="anthonymlortiz/lcn#4: variance as E[x²] - E[x]² goes negative and the sqrt "
        "gives NaN (also Project-MONAI/MONAI#1868, the LNCC loss's negative variance)",
        naive=std_naive,
        stable=std_stable,
        strategies=lambda: dict(_acts),
        fails_in=ALL_MODES,
        triggers={
            # a common offset of 1000: E[x²] - E[x]² = -6e-2 in float32
            **_same(dict(x=T([[1000.1, 1000.4, 1000.0]])), *_FP32_LIKE),
            "fp16": dict(x=T([[300.0, 300.0]])),  # 9e4 overflows: inf - inf
            "bf16": dict(x=T([[10.0, 11.0]])),  # 121 - 110.25 with 8 bits: 0.707 for 0.5
        },
        failure={**dict.fromkeys(ALL_MODES, _N), "bf16": _E},
    ),
    Pair(
        name="layer_norm_one_pass_variance",
        category="layernorm",
        source="NVIDIA/trt-samples-for-hackathon-cn#88: TensorRT-LLM's layernorm with "
        "USE_DIFF_OF_SQUARES computes Var = E[x²] - E[x]², which goes negative and rsqrt gives "
        "NaN",
        naive=layer_norm_naive,
        stable=layer_norm_stable,
        strategies=lambda: dict(_acts),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(x=T([[1000.1, 1000.1, 1000.5]])), *_FP32_LIKE),
            "fp16": dict(x=T([[300.0, 300.0]])),
            "bf16": dict(x=T([[10.0, 11.0]])),
        },
        failure={**dict.fromkeys(ALL_MODES, _N), "bf16": _E},
    ),
    # ------------------------------------------------------------------ BCE / focal / Dice
    Pair(
        name="bce_from_sigmoid",
        category="bce/focal",
        source="pytorch/pytorch#751: BCELoss on top of a sigmoid is numerically unstable "
        "(log of a saturated sigmoid); BCEWithLogitsLoss was added for it",
        naive=bce_naive,
        stable=bce_stable,
        strategies=lambda: dict(_binary),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(logits=T([20.0]), target=T([0])), *_FP32_LIKE),
            "fp16": dict(logits=T([10.0]), target=T([0])),
            "bf16": dict(logits=T([8.0]), target=T([0])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="focal_loss_sigmoid",
        category="bce/focal",
        source="xingyizhou/CenterNet#121: the focal loss gives -inf when the sigmoid output is "
        "exactly 0 or 1; kornia/kornia#2125 replaced log(sigmoid(x)) with logsigmoid",
        naive=focal_naive,
        stable=focal_stable,
        strategies=lambda: dict(_binary, gamma=st.scalars(0.0, 5.0)),
        fails_in=ALL_MODES,
        triggers={
            "fp32": dict(logits=T([-200.0]), target=T([1]), gamma=2.0),  # log(0)
            # pt rounds to 1: d/dpt (1 - pt) ** 0.5 is inf, times log(1) = 0
            **_same(dict(logits=T([20.0]), target=T([1]), gamma=0.5), *_AMP),
            "fp16": dict(logits=T([10.0]), target=T([1]), gamma=0.5),
            "bf16": dict(logits=T([8.0]), target=T([1]), gamma=0.5),
        },
        failure={**dict.fromkeys(ALL_MODES, _G), "fp32": _N},
    ),
    Pair(
        name="dice_empty_masks",
        category="dice",
        source="Project-MONAI/MONAI#2266: Dice is NaN for an all-zero prediction and label "
        "(0/0), expected 1 (also rundherum/pymia#16)",
        naive=dice_naive,
        stable=dice_stable,
        strategies=lambda: dict(
            probs=st.tensors(("B", "P"), min_value=0.0, max_value=1.0),
            target=st.targets(("B", "P"), num_classes=2),
        ),
        fails_in=ALL_MODES,
        triggers=_same(dict(probs=T([[0.0, 0.0]]), target=T([[0, 0]])), *sorted(ALL_MODES)),
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    # ------------------------------------------------------------------ soft-DTW
    Pair(
        name="soft_dtw_small_gamma",
        category="dtw",
        source="tslearn-team/tslearn#510: the global alignment kernel returns NaN on longer "
        "series and needs the log-sum-exp method; soft-DTW's softmin -gamma·log(sum(exp(-r / "
        "gamma))) underflows the same way for costs much larger than gamma",
        naive=soft_dtw_naive,
        stable=soft_dtw_stable,
        strategies=lambda: dict(
            x=st.activations(("T", "D"), min_value=-10, max_value=10),
            y=st.activations(("S", "D"), min_value=-10, max_value=10),
            gamma=st.temperatures(0.001, 1.0),
        ),
        dims={"T": (1, 5), "S": (1, 5)},
        fails_in=ALL_MODES,
        triggers={
            # exp(-4 / 0.01) is 0 in float32, 1.9e-174 in float64
            **_same(dict(x=T([[0.0]]), y=T([[2.0], [2.0]]), gamma=0.01), "fp32", "bf16", *_AMP),
            "fp16": dict(x=T([[0.0]]), y=T([[2.0], [2.0]]), gamma=0.1),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    # ------------------------------------------------------------------ KL / JS
    Pair(
        name="distillation_kl",
        category="kl",
        source="MakazhanAlpamys/Soup#719: distillation divergences go non-finite when the "
        "softmax underflows at a low temperature; a log-space reformulation fixes them",
        naive=kl_naive,
        stable=kl_stable,
        strategies=lambda: dict(
            target=st.probabilities(("B", "C")),
            logits=st.logits(("B", "C"), min_value=-1e4, max_value=1e4),
        ),
        wrt=("logits",),  # the teacher's distribution is data
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(target=T([[0.5, 0.5]]), logits=T([[0.0, -200.0]])), *_FP32_LIKE),
            "fp16": dict(target=T([[0.5, 0.5]]), logits=T([[0.0, -20.0]])),
            "bf16": dict(target=T([[0.5, 0.5]]), logits=T([[0.0, -100.0]])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="js_divergence",
        category="kl",
        source="cpsievert/LDAvis#56: jensenShannon written as 0.5·sum(x·log(x/m)) + "
        "0.5·sum(y·log(y/m)) returns NaN when probabilities are 0 (also drostlab/philentropy#1)",
        naive=js_naive,
        stable=js_stable,
        strategies=lambda: dict(
            a=st.logits(("B", "C"), min_value=-1e4, max_value=1e4),
            b=st.logits(("B", "C"), min_value=-1e4, max_value=1e4),
        ),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(a=T([[0.0, -200.0]]), b=T([[0.0, 0.0]])), *_FP32_LIKE),
            "fp16": dict(a=T([[0.0, -20.0]]), b=T([[0.0, 0.0]])),
            "bf16": dict(a=T([[0.0, -100.0]]), b=T([[0.0, 0.0]])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    # ------------------------------------------------------------------ VAE / Gaussian NLL
    Pair(
        name="vae_kl_fp16",
        category="vae",
        source="NVIDIA/apex#812: a VAE trained in float16 has a KL term that blows up; the KL "
        "here is pytorch/examples' vae loss_function, -0.5·sum(1 + logvar - mu² - exp(logvar))",
        naive=vae_kl_naive,
        stable=vae_kl_stable,
        strategies=lambda: dict(
            mu=st.activations(("B", "Z"), min_value=-100, max_value=100),
            logvar=st.activations(("B", "Z"), min_value=-30, max_value=10),
        ),
        fails_in=frozenset({"fp16"}),
        # the float16 sum reaches -7e4 although the KL, 3.5e4, is representable
        triggers={"fp16": dict(mu=T([[100.0] * 7]), logvar=T([[0.0] * 7]))},
        failure={"fp16": _N},
    ),
    Pair(
        name="mixture_density_nll",
        category="gaussian-nll",
        source="keras-team/keras#1061: a mixture density network's loss -log(sum(pi · "
        "exp(-d²/2σ²)/σ√2π)) goes to inf then NaN; tonyduan/mixture-density-network#4 works "
        "in log space",
        naive=mdn_naive,
        stable=mdn_stable,
        strategies=lambda: dict(
            pi_logits=st.logits(("B", "K"), min_value=-100, max_value=100),
            mu=st.activations(("B", "K"), min_value=-10, max_value=10),
            log_sigma=st.activations(("B", "K"), min_value=-2, max_value=3),
            target=st.activations(("B", 1), min_value=-10, max_value=10),
        ),
        fails_in=ALL_MODES,
        triggers={
            **_same(
                dict(
                    pi_logits=T([[0.0]]), mu=T([[-10.0]]), log_sigma=T([[0.0]]), target=T([[10.0]])
                ),
                "fp32",
                "bf16",
                *_AMP,
            ),
            "fp16": dict(
                pi_logits=T([[0.0]]), mu=T([[0.0]]), log_sigma=T([[0.0]]), target=T([[10.0]])
            ),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    # ------------------------------------------------------------------ spectral
    Pair(
        name="stft_magnitude_mse",
        category="spectral",
        source="pytorch/audio#993: Spectrogram with power=1 takes sqrt of a zero bin and the "
        "gradient is NaN; fixed in pytorch/audio#1013 with the complex abs",
        naive=stft_mag_naive,
        stable=stft_mag_stable,
        strategies=lambda: dict(
            x=st.activations(("B", "N"), min_value=-100, max_value=100),
            y=st.activations(("B", "N"), min_value=-100, max_value=100),
        ),
        dims={"N": (2, 16)},
        fails_in=ALL_MODES,
        triggers={
            # the DC bin of [1, -1] is exactly 0
            **_same(dict(x=T([[1.0, -1.0]]), y=T([[0.0, 0.0]])), "fp32", "bf16", "amp-bf16"),
            # the DC bin is 400 and 400² > 65504: inf - inf
            **_same(dict(x=T([[100.0] * 4]), y=T([[100.0] * 4])), "fp16", "amp-fp16"),
        },
        failure={**dict.fromkeys(ALL_MODES, _G), "fp16": _N, "amp-fp16": _N},
    ),
    # ------------------------------------------------------------------ attention
    Pair(
        name="attention_fully_masked_row",
        category="attention",
        source="pytorch/pytorch#26098: multi_head_attention_forward returns NaN with a "
        "key_padding_mask filled with -inf when a row is fully masked (later handled by "
        "_safe_softmax, pytorch/pytorch#131060)",
        naive=attention_inf_naive,
        stable=attention_inf_stable,
        strategies=lambda: dict(_attn),
        fails_in=ALL_MODES,
        triggers=_same(
            dict(
                q=T([[1.0, 0.0]]),
                k=T([[1.0, 0.0], [0.0, 1.0]]),
                v=T([[1.0, 2.0], [3.0, 4.0]]),
                mask=T([[False, False]]),
            ),
            *sorted(ALL_MODES),
        ),
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="attention_minus_1e9_mask",
        category="attention",
        source="google/flax#982: attention in float16 produces NaN with a mask (its large "
        "negative bias is -inf in float16); pytorch/benchmark#794: BERT's "
        "masked_fill(mask == 0, -1e9) overflows float16",
        naive=attention_1e9_naive,
        stable=attention_1e9_stable,
        strategies=lambda: dict(_attn),
        fails_in=ALL_MODES,
        triggers=_same(
            # a fully masked row: -1e9 rounds the scores away in float32/bfloat16 (uniform
            # weights instead of softmax of the scores) and is -inf in float16 (NaN)
            dict(
                q=T([[1.0, 0.0]]),
                k=T([[4.0, 0.0], [0.0, 0.0]]),
                v=T([[1.0, 2.0], [3.0, 4.0]]),
                mask=T([[False, False]]),
            ),
            *sorted(ALL_MODES),
        ),
        failure={**dict.fromkeys(ALL_MODES, _E), "fp16": _N, "amp-fp16": _N},
    ),
    # ------------------------------------------------------------------ log1p(exp) / log-cosh / logsigmoid
    Pair(
        name="softplus_log_one_plus_exp",
        category="softplus",
        source="rushter/MLAlgorithms#30: softplus written as log(1 + exp(z)) overflows to inf",
        naive=softplus_naive,
        stable=softplus_stable,
        strategies=lambda: dict(_logits),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(x=T([[100.0]])), "fp32", "bf16", *_AMP),
            "fp16": dict(x=T([[12.0]])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="log_cosh_loss",
        category="log-cosh",
        source="Lightning-AI/torchmetrics#3488: LogCoshError returns inf for finite large "
        "residuals (cosh overflows)",
        naive=log_cosh_naive,
        stable=log_cosh_stable,
        strategies=lambda: dict(
            pred=st.activations(("B",), min_value=-1e3, max_value=1e3),
            target=st.activations(("B",), min_value=-1e3, max_value=1e3),
        ),
        fails_in=ALL_MODES,
        triggers={
            **_same(dict(pred=T([100.0]), target=T([0.0])), "fp32", "bf16", *_AMP),
            "fp16": dict(pred=T([12.0]), target=T([0.0])),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    Pair(
        name="dpo_log_sigmoid",
        category="log-sigmoid",
        source="thinking-machines-lab/tinker-cookbook#188: the DPO loss -log(sigmoid(x)) "
        "replaced by logsigmoid (inf for large negative margins); also "
        "deepspeedai/DeepSpeedExamples#501",
        naive=dpo_naive,
        stable=dpo_stable,
        strategies=lambda: dict(
            policy_chosen=_logps,
            policy_rejected=_logps,
            ref_chosen=_logps,
            ref_rejected=_logps,
            beta=st.scalars(0.01, 1.0),
        ),
        wrt=("policy_chosen", "policy_rejected"),  # the reference model is frozen
        fails_in=ALL_MODES,
        triggers={
            **_same(
                dict(
                    policy_chosen=T([-2000.0]),
                    policy_rejected=T([0.0]),
                    ref_chosen=T([0.0]),
                    ref_rejected=T([0.0]),
                    beta=0.1,
                ),
                "fp32",
                "bf16",
                *_AMP,
            ),
            "fp16": dict(
                policy_chosen=T([-200.0]),
                policy_rejected=T([0.0]),
                ref_chosen=T([0.0]),
                ref_rejected=T([0.0]),
                beta=0.1,
            ),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    # ------------------------------------------------------------------ acos / acosh
    Pair(
        name="arcface_acos_margin",
        category="angular",
        source="ronghuaiyang/arcface-pytorch#91: ArcFace loss goes NaN from the infinite "
        "derivative of the angle at cos = ±1 (also ronghuaiyang/arcface-pytorch#32, "
        "pytorch/pytorch#8069 on acos)",
        naive=arcface_naive,
        stable=arcface_stable,
        strategies=lambda: dict(
            cosine=st.tensors(("B", "C"), min_value=-1.0, max_value=1.0),
            target=st.targets(("B",), num_classes="C"),
        ),
        fails_in=ALL_MODES,
        triggers=_same(dict(cosine=T([[1.0, 0.0]]), target=T([0])), *sorted(ALL_MODES)),
        failure=dict.fromkeys(ALL_MODES, _G),
    ),
    Pair(
        name="poincare_distance_acosh",
        category="hyperbolic",
        source="facebookresearch/poincare-embeddings hype/poincare.py: the Poincaré distance "
        "acosh(1 + 2|u-v|²/((1-|u|²)(1-|v|²))) needs a hand-written backward that clamps "
        "sqrt(z² - 1), because acosh's derivative at z = 1 (u = v) is infinite",
        naive=poincare_naive,
        stable=poincare_stable,
        strategies=lambda: dict(
            u=st.tensors(("B", "D"), min_value=-0.49, max_value=0.49),
            v=st.tensors(("B", "D"), min_value=-0.49, max_value=0.49),
        ),
        dims={"D": (1, 4)},  # |u| <= 0.98: inside the ball
        fails_in=ALL_MODES,
        triggers={
            # 1 + 2e-8 rounds to 1 in float32: distance 0 for 2e-4
            "fp32": dict(u=T([[0.1]]), v=T([[0.1001]])),
            **_same(dict(u=T([[0.25, 0.0]]), v=T([[0.25, 0.0]])), "fp16", "bf16", *_AMP),
        },
        failure={**dict.fromkeys(ALL_MODES, _G), "fp32": _E},
    ),
    # ------------------------------------------------------------------ Sinkhorn
    Pair(
        name="sinkhorn_small_eps",
        category="optimal-transport",
        source="facebookresearch/dinov2#583: Sinkhorn-Knopp's exp(teacher_output / "
        "teacher_temp) overflows at a small temperature and the loss is NaN; the "
        "kernel exp(-C / eps) underflows the same way here",
        naive=sinkhorn_naive,
        stable=sinkhorn_stable,
        strategies=lambda: dict(
            x=st.embeddings(("N", "D"), min_value=-1, max_value=1),
            y=st.embeddings(("M", "D"), min_value=-1, max_value=1),
            eps=st.temperatures(0.05, 1.0),
        ),
        dims={"N": (1, 8), "M": (1, 8), "D": (1, 8)},
        fails_in=ALL_MODES,
        triggers={
            # K = exp(-20) is 0 in float16: u = a / 0
            **_same(dict(x=T([[0.0]]), y=T([[1.0]]), eps=0.05), "fp16", "amp-fp16"),
            # K = exp(-8 / 0.05) is 0 in float32, 3e-70 in float64
            **_same(
                dict(x=T([[1.0, 1.0]]), y=T([[-1.0, -1.0]]), eps=0.05), "fp32", "bf16", "amp-bf16"
            ),
        },
        failure=dict.fromkeys(ALL_MODES, _N),
    ),
    # ------------------------------------------------------------------ long sums / means
    Pair(
        name="running_sum_low_precision",
        category="reduction",
        source="Lightning-AI/pytorch-lightning#18620: epoch-level reductions accumulate in "
        "bf16 and get stuck (256 + 1 == 256); huggingface/transformers#8561 resets the bf16 "
        "loss accumulator for the same reason",
        naive=running_mean_naive,
        stable=running_mean_stable,
        strategies=lambda: dict(x=st.tensors(("N",), min_value=-1e4, max_value=1e4)),
        fails_in=frozenset({"fp32", "fp16", "bf16"}),
        triggers={
            # at 1e4 a float32 running total keeps steps of 1e-3: fourteen + 0.3 lose 2.7e-3
            "fp32": dict(x=T([1e4] + [0.3] * 14 + [-1e4])),
            "fp16": dict(x=T([10000.0] * 7)),  # the running total passes 65504
            "bf16": dict(x=T([256.0] + [1.0] * 15)),  # every + 1 rounds back to 256
        },
        failure={"fp32": _E, "fp16": _N, "bf16": _E},
    ),
    Pair(
        name="mse_sum_over_n",
        category="reduction",
        source="chainer/chainer#6702: mean_absolute_error sums float16 into inf before "
        "dividing by the size; pytorch/pytorch#44350 (mean overflows on CPU in half)",
        naive=mse_naive,
        stable=mse_stable,
        strategies=lambda: dict(
            pred=st.activations(("B", "D"), min_value=-100, max_value=100),
            target=st.activations(("B", "D"), min_value=-100, max_value=100),
        ),
        fails_in=frozenset({"fp16"}),
        triggers={"fp16": dict(pred=T([[100.0, 100.0]]), target=T([[-100.0, -100.0]]))},
        failure={"fp16": _N},
    ),
    Pair(
        name="masked_mean_pooling",
        category="pooling",
        source="sentence-transformers' mean pooling divides by torch.clamp(mask.sum(1), "
        "min=1e-9), which is 0 in float16 (a fully padded row gives 0/0); HKUDS/LightRAG#3675 "
        "clamps the count at 1 and accumulates in float32",
        naive=mean_pool_naive,
        stable=mean_pool_stable,
        strategies=lambda: dict(
            hidden=st.activations(("B", "L", "D"), min_value=-100, max_value=100),
            mask=st.masks(("B", "L")),
        ),
        fails_in=frozenset({"fp16"}),
        triggers={"fp16": dict(hidden=T([[[1.0, 2.0]]]), mask=T([[False]]))},
        failure={"fp16": _N},
    ),
    Pair(
        name="gram_matrix_fp16",
        category="style",
        source="pytorch/pytorch#3651: neural style transfer's GramMatrix overflows float16; "
        "NVIDIA/apex#402: the bmm gram matrix gives NaN under mixed precision",
        naive=gram_naive,
        stable=gram_stable,
        strategies=lambda: dict(
            features=st.activations(("C", "P"), min_value=-100, max_value=100),
        ),
        fails_in=frozenset({"fp16", "amp-fp16"}),
        # f·f = 7e4 overflows before the division by 7
        triggers=_same(dict(features=T([[100.0] * 7])), "fp16", "amp-fp16"),
        failure={"fp16": _N, "amp-fp16": _N},
    ),
)
