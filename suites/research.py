"""Losses people write by hand from papers: each as commonly written (``*_naive``) and the same
mathematical function written the way an expert would (``*_stable``).

A stable twin computes in float32 with autocast off (``up`` keeps float64 inputs in float64, so
its reference is a true float64 computation), subtracts maxima (logsumexp, log_softmax), works
in log space (softplus, logsigmoid), takes scaled norms, and removes a large common part before
it cancels. Where the naive function is undefined (0/0 on empty masks) the stable one takes the
natural convention, said in its docstring. Each stable twin passes in every mode, or its
expectation says ``limit`` with the reason.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from _helpers import dft_matrices, full_precision, up  # the suites' folder is on sys.path

import stress
from stress import st

# contrastive losses take projections of unit scale (normalised, or nearly): |x_d| <= 1; the
# temperature goes down to CLIP's clamp, 0.01
_unit_emb = dict(
    x=st.embeddings(("B", "D"), min_value=-1, max_value=1),
    y=st.embeddings(("B", "D"), min_value=-1, max_value=1),
)
_temp = st.temperatures(0.01, 1.0)

# --- InfoNCE / NT-Xent with a temperature ------------------------------------------------------


@stress.target(
    **_unit_emb,
    temp=_temp,
    expect={
        "fp32": "finite_forward",
        "fp16": "finite_forward",
        "bf16": ("finite_forward", "error", "gradient_error"),
        "amp-fp16": "finite_forward",
        "amp-bf16": "finite_forward",
    },
    reason="x·y/temp reaches exp's overflow threshold (88.7; 11.1 in float16) and exp().sum().log() is not "
    "max-subtracted; in bfloat16 the logits are rounded to 8 bits, forward and backward",
)
def info_nce_naive(x: torch.Tensor, y: torch.Tensor, temp: float) -> torch.Tensor:
    logits = x @ y.T / temp
    return -(logits.diag() - logits.exp().sum(1).log()).mean()


@stress.target(**_unit_emb, temp=_temp)
def info_nce_stable(x: torch.Tensor, y: torch.Tensor, temp: float) -> torch.Tensor:
    """logsumexp over the logits relative to each row's positive, x_i·(y_j - y_i) / temp: the
    same loss (log-softmax is shift-invariant), without rounding logits that are large only
    because the embeddings are."""
    with full_precision(x):
        xf, yf = up(x), up(y)
        rel = (xf[:, None, :] * (yf[None, :, :] - yf[:, None, :])).sum(-1) / temp
        return torch.logsumexp(rel, dim=1).mean()  # rel[i, i] = 0 is the positive


# --- soft nearest-neighbour alignment (TCC) ---------------------------------------------------

# frame embeddings of a few units, at TCC's temperatures (0.1 in the paper)
_frames = dict(
    x=st.embeddings(("B", "D"), min_value=-2, max_value=2),
    y=st.embeddings(("B", "D"), min_value=-2, max_value=2),
)
_tcc_temp = st.temperatures(0.1, 1.0)


@stress.target(
    **_frames,
    temp=_tcc_temp,
    expect={
        "fp32": ("finite_forward", "finite_gradients"),
        "fp16": ("finite_forward", "finite_gradients", "error"),
        "bf16": ("finite_forward", "finite_gradients", "gradient_error"),
        "amp-fp16": ("finite_forward", "finite_gradients"),
        "amp-bf16": ("finite_forward", "finite_gradients", "gradient_error"),
    },
    reason="exp(-d²/temp) underflows to 0 for every neighbour: the normaliser is 0/0 (NaN), and where "
    "one weight survives, its gradient divides by the rounded normaliser; in float16 the weights "
    "past d²/temp ≈ 17 flush to zero while nearer ones do not, which moves the alignment",
)
def soft_nn_alignment_naive(x: torch.Tensor, y: torch.Tensor, temp: float) -> torch.Tensor:
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    alpha = torch.exp(-d2 / temp)
    alpha = alpha / alpha.sum(1, keepdim=True)
    return ((x - alpha @ y) ** 2).sum(-1).mean()


@stress.target(**_frames, temp=_tcc_temp)
def soft_nn_alignment_stable(x: torch.Tensor, y: torch.Tensor, temp: float) -> torch.Tensor:
    """A softmax over -d²/temp: max-subtracted, so the normaliser is at least 1."""
    with full_precision(x):
        xf, yf = up(x), up(y)
        alpha = torch.softmax(-((xf[:, None, :] - yf[None, :, :]) ** 2).sum(-1) / temp, dim=1)
        return ((xf - alpha @ yf) ** 2).sum(-1).mean()


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
    expect={
        "fp32": ("error", "finite_forward", "finite_gradients"),
        "fp16": ("error", "finite_forward", "finite_gradients"),
        "bf16": ("finite_forward", "gradient_error"),
        "amp-fp16": ("finite_forward", "finite_gradients"),
        "amp-bf16": ("finite_forward", "finite_gradients"),
    },
    reason="softmin as -gamma·log(sum(exp(-r/gamma))): exp underflows to 0 for costs ≫ gamma, log(0) = "
    "-inf (and the gradient 0/0); where one term survives, the costs lose the others' share",
)
def soft_dtw_naive(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return _soft_dtw(cost, lambda r: -gamma * torch.log(torch.exp(-r / gamma).sum()))


@stress.target(**_seq, gamma=_gamma, dims=_seq_dims)
def soft_dtw_stable(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """A logsumexp softmin; the recursion runs in float64, as mblondel/soft-dtw's does: the
    softmin weights are exp(-(r_k - r_min) / gamma), and rounding accumulated costs of ~1e3 to
    float32 is an error of ~1e-4 / gamma in the exponent."""
    with full_precision(x):
        cost = ((x.double()[:, None, :] - y.double()[None, :, :]) ** 2).sum(-1)
        return _soft_dtw(cost, lambda r: -gamma * torch.logsumexp(-r / gamma, 0))


# --- focal loss ------------------------------------------------------------------------------

_binary = dict(
    logits=st.logits(("B",), min_value=-1e3, max_value=1e3),
    target=st.targets(("B",), num_classes=2),
)


@stress.target(
    **_binary,
    expect={
        "fp32": ("error", "finite_forward"),
        "fp16": ("error", "finite_forward"),
        "bf16": ("error", "finite_forward"),
        "amp-fp16": ("error", "finite_forward"),
        "amp-bf16": ("finite_forward",),
    },
    reason="sigmoid saturates to exactly 0 or 1, so log(p) or log(1 - p) is log(0) = -inf; just short of "
    "saturation, 1 - p keeps a few bits and the loss is far off",
)
def focal_loss_naive(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    t = target.to(p.dtype)
    pt = p * t + (1 - p) * (1 - t)
    return (-((1 - pt) ** 2) * torch.log(pt)).mean()


@stress.target(**_binary)
def focal_loss_stable(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pt = sigmoid(z) with z = ±logits: -log(pt) = softplus(-z), (1 - pt)² = exp(2·logsigmoid(-z))."""
    with full_precision(logits):
        x = up(logits)
        z = x * (2 * target.to(x.dtype) - 1)
        return (torch.exp(2 * F.logsigmoid(-z)) * F.softplus(-z)).mean()


# --- Dice loss -------------------------------------------------------------------------------

_seg = dict(
    probs=st.tensors(("B", "P"), min_value=0, max_value=1),
    target=st.targets(("B", "P"), num_classes=2),
)


@stress.target(
    **_seg,
    expect={
        "fp32": ("finite_forward", "finite_gradients"),
        "fp16": ("finite_forward", "finite_gradients"),
        "bf16": ("finite_forward", "finite_gradients"),
        "amp-fp16": ("finite_forward", "finite_gradients"),
        "amp-bf16": ("finite_forward", "finite_gradients"),
    },
    reason="an empty prediction and an empty mask give 0/0 = NaN; a subnormal prediction on an empty "
    "mask gives a finite loss whose gradient divides by its square",
)
def dice_loss_naive(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    t = target.to(probs.dtype)
    return (1 - 2 * (probs * t).sum(-1) / (probs.sum(-1) + t.sum(-1))).mean()


@stress.target(**_seg)
def dice_loss_stable(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice loss; an empty prediction on an empty mask scores a perfect Dice of 1."""
    with full_precision(probs):
        p = up(probs)
        t = target.to(p.dtype)
        den = p.sum(-1) + t.sum(-1)
        # den < 1 only when the mask is empty, where the intersection is 0: the clamp changes no
        # value, and keeps the gradient of the branch torch.where does not take finite
        dice = torch.where(den > 0, 2 * (p * t).sum(-1) / den.clamp_min(1.0), 1.0)
        return (1 - dice).mean()


# --- log-spectral distance: squared differences of clamped log-magnitudes ---------------------

_signals = dict(
    x=st.activations(("B", "N"), min_value=-100, max_value=100),
    y=st.activations(("B", "N"), min_value=-100, max_value=100),
)


def _log_magnitude(x: torch.Tensor, centre: bool) -> torch.Tensor:
    """log sqrt(max(re² + im², 1e-7)) of each rfft bin, the DFT as a matmul (torch.fft has no
    float16/bfloat16 CPU kernel)."""
    n = x.shape[-1]
    cos, sin = dft_matrices(n, x.dtype)
    if centre:
        # the mean only feeds bin 0 (n·mean): the other bins of a near-constant row then come
        # from exact differences instead of cancelling to rounding noise
        mean = x.mean(-1, keepdim=True)
        re, im = (x - mean) @ cos.T, (x - mean) @ sin.T
        dc = torch.zeros_like(re)
        dc[..., 0] = 1.0
        re = re + dc * (mean * n)
    else:
        re, im = x @ cos.T, x @ sin.T
    return torch.log(torch.sqrt(torch.clamp(re**2 + im**2, min=1e-7)))


@stress.target(
    **_signals,
    expect={
        "fp32": stress.Expect.may_fail("gradient_error", rate=0.9),
        "fp16": ("error", "finite_forward", "finite_gradients", "gradient_error"),
        "bf16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
        "amp-fp16": ("error", "finite_forward", "finite_gradients", "gradient_error"),
        "amp-bf16": ("error", "gradient_error"),
    },
    reason="float16 (autocast's float16 DFT too): re² + im² of a bin above 256 overflows, and the "
    "clamp's 1e-7 rounds to the subnormal 1.19e-7, moving the floor of a zero bin's log-magnitude "
    "from -8.06 to -7.96; the bins of a near-constant signal cancel to rounding noise, whose log "
    "is far from the true one",
)
def spectral_loss_naive(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((_log_magnitude(x, centre=False) - _log_magnitude(y, centre=False)) ** 2).mean()


@stress.target(**_signals)
def spectral_loss_stable(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The same clamped log-magnitudes in float32, of the mean-removed signal (bin 0 added back)."""
    with full_precision(x):
        return (
            (_log_magnitude(up(x), centre=True) - _log_magnitude(up(y), centre=True)) ** 2
        ).mean()


# --- normalised MSE of positive intensities --------------------------------------------------

_nmse = dict(
    pred=st.activations(("B", "D"), min_value=-1e3, max_value=1e3),
    target=st.activations(("B", "D"), min_value=1.0, max_value=1e3),  # intensities: never all zero
)


@stress.target(
    **_nmse,
    wrt=("pred",),  # the target is data
    expect={
        "fp16": ("finite_forward",),
    },
    reason="||pred - target||² and ||target||² of 1e3-scale rows overflow float16: inf/inf = NaN, or inf "
    "where the ratio is representable",
)
def nmse_naive(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (((pred - target) ** 2).sum(-1) / (target**2).sum(-1)).mean()


@stress.target(**_nmse, wrt=("pred",))
def nmse_stable(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The same ratio in float32."""
    with full_precision(pred):
        p, t = up(pred), up(target)
        return (((p - t) ** 2).sum(-1) / (t**2).sum(-1)).mean()


# --- distillation: KL with a temperature ------------------------------------------------------

_distill = dict(
    student=st.logits(("B", "C"), min_value=-1e3, max_value=1e3),
    teacher=st.logits(("B", "C"), min_value=-1e3, max_value=1e3),
    temp=st.temperatures(0.5, 10.0),
)


@stress.target(
    **_distill,
    expect={
        "fp32": ("finite_forward",),
        "fp16": ("error", "finite_forward"),
        "bf16": stress.Expect.may_fail("error", "finite_forward", rate=1.0),
        "amp-fp16": ("finite_forward", "finite_gradients"),
        "amp-bf16": ("finite_forward", "finite_gradients"),
    },
    reason="a softmax that underflowed to 0 has log -inf, and 0 · (-inf) = NaN; in 16 bits a tiny "
    "probability rounded to a few bits makes p·log(p/q) far off",
)
def distillation_kl_naive(
    student: torch.Tensor, teacher: torch.Tensor, temp: float
) -> torch.Tensor:
    p_t = torch.softmax(teacher / temp, -1)
    p_s = torch.softmax(student / temp, -1)
    return (p_t * (p_t.log() - p_s.log())).sum(-1).mean() * temp**2


@stress.target(**_distill)
def distillation_kl_stable(
    student: torch.Tensor, teacher: torch.Tensor, temp: float
) -> torch.Tensor:
    """KL(teacher || student) of log_softmax outputs, ``kl_div(..., log_target=True)``."""
    with full_precision(student):
        log_t = torch.log_softmax(up(teacher) / temp, -1)
        log_s = torch.log_softmax(up(student) / temp, -1)
        return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temp**2


# --- VAE KL with a log-variance ----------------------------------------------------------------

_latent = dict(
    mu=st.activations(("B", "Z"), min_value=-100, max_value=100),
    logvar=st.activations(("B", "Z"), min_value=-50, max_value=10),
)


@stress.target(
    **_latent,
    expect={
        "fp16": ("finite_forward", "finite_gradients"),
    },
    reason="sigma = exp(0.5·logvar) underflows to 0 in float16 for logvar < -34.7: log(sigma) = -inf, "
    "and the gradient of log(sigma) is 1/0",
)
def vae_kl_naive(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    sigma = torch.exp(0.5 * logvar)
    return (0.5 * (mu**2 + sigma**2 - 1) - torch.log(sigma)).sum(-1).mean()


@stress.target(**_latent)
def vae_kl_stable(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log(sigma) is 0.5·logvar and sigma² is exp(logvar): no log of an exp, in float32."""
    with full_precision(mu):
        m, lv = up(mu), up(logvar)
        return (0.5 * (m**2 + lv.exp() - 1 - lv)).sum(-1).mean()
