"""Losses people write by hand from papers: each as commonly written (``*_naive``) and as a
stable version (``*_stable``) that passes in every mode. Stable versions compute in float32
with autocast off, work in log space, and keep every eps representable in float16.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from _helpers import full_precision  # the suites' folder is on sys.path

import stress
from stress import st

_emb = dict(
    x=st.embeddings(("B", "D"), min_value=-100, max_value=100),
    y=st.embeddings(("B", "D"), min_value=-100, max_value=100),
)
_temp = st.temperatures(0.01, 1.0)

# --- InfoNCE / NT-Xent with a temperature ------------------------------------------------------


@stress.target(
    **_emb,
    temp=_temp,
    expect="fail",
    reason="x·y/temp reaches exp's overflow threshold; exp().sum().log() is not max-subtracted",
)
def info_nce_naive(x, y, temp):  # type: ignore[no-untyped-def]
    logits = x @ y.T / temp
    return -(logits.diag() - logits.exp().sum(1).log()).mean()


@stress.target(**_emb, temp=_temp)
def info_nce_stable(x, y, temp):  # type: ignore[no-untyped-def]
    with full_precision(x):
        xn, yn = F.normalize(x.float(), dim=-1, eps=1e-3), F.normalize(y.float(), dim=-1, eps=1e-3)
        return F.cross_entropy(xn @ yn.T / temp, torch.arange(len(x), device=x.device))


# --- soft nearest-neighbour alignment (TCC) ---------------------------------------------------


@stress.target(
    **_emb,
    temp=_temp,
    expect="fail",
    reason="exp(-d²/temp) underflows to 0 for every neighbour: the normaliser is 0/0",
)
def soft_nn_alignment_naive(x, y, temp):  # type: ignore[no-untyped-def]
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    alpha = torch.exp(-d2 / temp)
    alpha = alpha / alpha.sum(1, keepdim=True)
    return ((x - alpha @ y) ** 2).sum(-1).mean()


@stress.target(
    **_emb,
    temp=_temp,
    expect={"fp16": "may-fail"},
    reason="at temperature 0.01 the gradient w.r.t. float16 embeddings exceeds 65504 (a representability limit: keep embeddings in float32)",
)
def soft_nn_alignment_stable(x, y, temp):  # type: ignore[no-untyped-def]
    with full_precision(x):
        xf, yf = x.float(), y.float()
        alpha = torch.softmax(-((xf[:, None, :] - yf[None, :, :]) ** 2).sum(-1) / temp, dim=1)
        return ((xf - alpha @ yf) ** 2).sum(-1).mean() / (1 + (xf**2).sum(-1).mean())


# --- soft-DTW with a small gamma -------------------------------------------------------------

_seq = dict(
    x=st.activations(("T", "D"), min_value=-10, max_value=10),
    y=st.activations(("S", "D"), min_value=-10, max_value=10),
)
_gamma = st.temperatures(0.001, 1.0)
_seq_dims = {"T": (1, 5), "S": (1, 5)}


def _soft_dtw(cost: torch.Tensor, softmin) -> torch.Tensor:  # type: ignore[no-untyped-def]
    t, s = cost.shape
    inf = torch.tensor(math.inf, dtype=cost.dtype, device=cost.device)
    r = [[inf] * (s + 1) for _ in range(t + 1)]
    r[0][0] = torch.zeros((), dtype=cost.dtype, device=cost.device)
    for i in range(1, t + 1):
        for j in range(1, s + 1):
            r[i][j] = cost[i - 1, j - 1] + softmin(
                torch.stack([r[i - 1][j - 1], r[i - 1][j], r[i][j - 1]])
            )
    return r[t][s]


@stress.target(
    **_seq,
    gamma=_gamma,
    dims=_seq_dims,
    expect="fail",
    reason="softmin as -gamma·log(sum(exp(-r/gamma))): exp underflows to 0 for costs ≫ gamma, log(0) = -inf",
)
def soft_dtw_naive(x, y, gamma):  # type: ignore[no-untyped-def]
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return _soft_dtw(cost, lambda r: -gamma * torch.log(torch.exp(-r / gamma).sum()))


@stress.target(**_seq, gamma=_gamma, dims=_seq_dims)
def soft_dtw_stable(x, y, gamma):  # type: ignore[no-untyped-def]
    with full_precision(x):
        cost = ((x.float()[:, None, :] - y.float()[None, :, :]) ** 2).sum(-1)
        # logsumexp subtracts the max: finite for any gamma; -inf entries (the border) drop out
        return _soft_dtw(cost, lambda r: -gamma * torch.logsumexp(-r / gamma, 0)) / cost.numel()


# --- focal loss ------------------------------------------------------------------------------

_binary = dict(
    logits=st.logits(("B",), min_value=-1e3, max_value=1e3),
    target=st.targets(("B",), num_classes=2),
)


@stress.target(
    **_binary,
    expect="fail",
    reason="sigmoid saturates to exactly 0 or 1, so log(p) or log(1 - p) is log(0)",
)
def focal_loss_naive(logits, target):  # type: ignore[no-untyped-def]
    p = torch.sigmoid(logits)
    t = target.to(p.dtype)
    pt = p * t + (1 - p) * (1 - t)
    return (-((1 - pt) ** 2) * torch.log(pt)).mean()


@stress.target(**_binary)
def focal_loss_stable(logits, target):  # type: ignore[no-untyped-def]
    with full_precision(logits):
        x, t = logits.float(), target.float()
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")  # log-sigmoid inside
        pt = torch.exp(-ce)
        return ((1 - pt) ** 2 * ce).mean()


# --- Dice loss -------------------------------------------------------------------------------

_seg = dict(
    probs=st.tensors(("B", "P"), min_value=0, max_value=1),
    target=st.targets(("B", "P"), num_classes=2),
)


@stress.target(
    **_seg,
    expect="fail",
    reason="an empty prediction and an empty mask give 0/0",
)
def dice_loss_naive(probs, target):  # type: ignore[no-untyped-def]
    t = target.to(probs.dtype)
    return (1 - 2 * (probs * t).sum(-1) / (probs.sum(-1) + t.sum(-1))).mean()


@stress.target(**_seg)
def dice_loss_stable(probs, target):  # type: ignore[no-untyped-def]
    p, t = probs.float(), target.float()
    return (1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)).mean()  # smoothed by 1


# --- spectral (FFT) loss on log-magnitudes ----------------------------------------------------

_signals = dict(
    x=st.activations(("B", "N"), min_value=-100, max_value=100),
    y=st.activations(("B", "N"), min_value=-100, max_value=100),
)


def _dft(x: torch.Tensor, norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary DFT parts as matmuls (torch.fft has no float16 CPU kernel)."""
    n = x.shape[-1]
    k = torch.arange(n, dtype=torch.float64)
    angle = 2 * math.pi * k[:, None] * k[None, :] / n
    return x @ (torch.cos(angle) * norm).to(x.dtype), x @ (-torch.sin(angle) * norm).to(x.dtype)


@stress.target(
    **_signals,
    expect="fail",
    reason="log|X| of a zero spectrum bin is log(0); |X| = sqrt(re²+im²) has an infinite derivative at 0",
)
def spectral_loss_naive(x, y):  # type: ignore[no-untyped-def]
    (xr, xi), (yr, yi) = _dft(x, 1.0), _dft(y, 1.0)
    return ((xr**2 + xi**2).sqrt().log() - (yr**2 + yi**2).sqrt().log()).abs().mean()


@stress.target(**_signals)
def spectral_loss_stable(x, y):  # type: ignore[no-untyped-def]
    with full_precision(x):
        norm = 1 / math.sqrt(x.shape[-1])
        (xr, xi), (yr, yi) = _dft(x.float(), norm), _dft(y.float(), norm)
        # log(1 + |X|²): no log(0), no sqrt at 0
        return ((xr**2 + xi**2).log1p() - (yr**2 + yi**2).log1p()).abs().mean()


# --- normalised MSE --------------------------------------------------------------------------


@stress.target(
    pred=st.activations(("B", "D"), min_value=-1e3, max_value=1e3),
    target=st.activations(("B", "D"), min_value=-1e3, max_value=1e3),
    expect={
        "fp32": "fail",
        "fp16": "fail",
        "bf16": "fail",
        "amp-fp16": "may-fail",
        "amp-bf16": "fail",
    },
    reason="a zero target gives ||pred||²/0; ||·||² of 1e3-scale rows overflows float16",
)
def nmse_naive(pred, target):  # type: ignore[no-untyped-def]
    return (((pred - target) ** 2).sum(-1) / (target**2).sum(-1)).mean()


@stress.target(
    pred=st.activations(("B", "D"), min_value=-1e3, max_value=1e3),
    target=st.activations(("B", "D"), min_value=-1e3, max_value=1e3),
    wrt=("pred",),  # the target is data: its gradient (up to ~1e6 here) is never used
)
def nmse_stable(pred, target):  # type: ignore[no-untyped-def]
    p, t = pred.float(), target.float()
    return (((p - t) ** 2).sum(-1) / ((t**2).sum(-1) + 1.0)).mean()  # eps representable everywhere


# --- distillation: KL with a temperature ------------------------------------------------------

_distill = dict(
    student=st.logits(("B", "C"), min_value=-1e3, max_value=1e3),
    teacher=st.logits(("B", "C"), min_value=-1e3, max_value=1e3),
    temp=st.temperatures(0.5, 10.0),
)


@stress.target(
    **_distill,
    expect="fail",
    reason="log of a softmax that underflowed to 0 is -inf, and 0 · (-inf) = NaN",
)
def distillation_kl_naive(student, teacher, temp):  # type: ignore[no-untyped-def]
    p_t = torch.softmax(teacher / temp, -1)
    p_s = torch.softmax(student / temp, -1)
    return (p_t * (p_t.log() - p_s.log())).sum(-1).mean() * temp**2


@stress.target(**_distill)
def distillation_kl_stable(student, teacher, temp):  # type: ignore[no-untyped-def]
    with full_precision(student):
        log_t = torch.log_softmax(teacher.float() / temp, -1)
        log_s = torch.log_softmax(student.float() / temp, -1)
        return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temp**2


# --- VAE KL with a log-variance ----------------------------------------------------------------

_latent = dict(
    mu=st.activations(("B", "Z"), min_value=-100, max_value=100),
    logvar=st.activations(("B", "Z"), min_value=-100, max_value=100),
)


@stress.target(
    **_latent,
    expect="fail",
    reason="sigma = exp(0.5·logvar) overflows or underflows to 0, then log(sigma) is -inf",
)
def vae_kl_naive(mu, logvar):  # type: ignore[no-untyped-def]
    sigma = torch.exp(0.5 * logvar)
    return (0.5 * (mu**2 + sigma**2 - 1) - torch.log(sigma)).sum(-1).mean()


@stress.target(**_latent)
def vae_kl_stable(mu, logvar):  # type: ignore[no-untyped-def]
    with full_precision(mu):
        lv = logvar.float().clamp(-30.0, 10.0)  # exp(10)/2, its gradient, still fits float16
        return (-0.5 * (1 + lv - mu.float() ** 2 - lv.exp())).sum(-1).mean()
