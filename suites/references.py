"""Hand-written kernels checked against the PyTorch op they replace (``reference="torch"``).

A fused or hand-optimised version of an op can be wrong in two ways. A *semantic* bug computes
something else in every precision — its own float64 run disagrees with the reference too — and
comparing the function with itself in float64 can never see it. A *precision* bug is right in
float64 but breaks in a narrow dtype. Each kernel below comes as a semantic bug, a precision bug
and the fixed version, all compared with the same PyTorch reference (see
``stress.engine.references`` for the adapters: the target's name picks the op).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import stress
from stress import st

Tensor = torch.Tensor

_qkv = dict(
    q=st.activations(("B", "L", "E"), min_value=-10, max_value=10),
    k=st.activations(("B", "L", "E"), min_value=-10, max_value=10),
    v=st.activations(("B", "L", "E"), min_value=-10, max_value=10),
    mask=st.masks(("B", "L")),
)
_attention_dims = {"E": (2, 8)}


def _scores(q: Tensor, k: Tensor) -> Tensor:
    return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])


# --- attention with a padding mask over the keys (True = attend) ------------------------------


@stress.target(
    **_qkv,
    dims=_attention_dims,
    reference="torch",
    expect="reference_mismatch",
    reason="semantic: the padding mask is applied to the queries (rows) instead of the keys, in every precision",
)
def rows_masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    with torch.autocast(q.device.type, enabled=False):  # numerically sound: only the mask is wrong
        weights = torch.softmax(_scores(q.float(), k.float()), -1)
        return ((weights @ v.float()) * mask[..., None]).to(v.dtype)


@stress.target(
    **_qkv,
    dims=_attention_dims,
    reference="torch",
    expect={
        "fp32": stress.Expect.may_fail(rate=0.9),
        **dict.fromkeys(("fp16", "bf16", "amp-fp16", "amp-bf16"), "fail"),
    },
    reason="precision: the softmax is not max-subtracted: exp of the scores overflows float16 above 11.09 (inf/inf), "
    "and a row whose scores all lie below -87 underflows to 0/0 in float32",
    max_examples=150,  # the all-low rows of float32 and bfloat16 take more than the ci profile's 30
)
def unshifted_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    e = _scores(q, k).exp() * mask[:, None, :]
    total = e.sum(-1, keepdim=True)
    out = (e / torch.where(total > 0, total, torch.ones_like(total))) @ v
    return torch.where(mask.any(-1)[:, None, None], out, torch.zeros_like(out))


@stress.target(**_qkv, dims=_attention_dims, reference="torch")
def fused_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Scores and softmax in float32 with autocast off, masked at -inf over the keys, max-subtracted;
    a query with no key to attend to gets 0."""
    with torch.autocast(q.device.type, enabled=False):
        s = _scores(q.float(), k.float()).masked_fill(~mask[:, None, :], -math.inf)
        weights = torch.softmax(s, -1).nan_to_num(0.0)  # a fully masked row: 0, not 0/0
        return (weights @ v.float()).to(v.dtype)


# --- masked pooling over a padded sequence --------------------------------------------------------

_pool = dict(x=st.activations(("B", "L"), min_value=-6e4, max_value=6e4), mask=st.masks(("B", "L")))


@stress.target(
    **_pool,
    reference="torch",
    expect={
        "fp16": "exception",
        **dict.fromkeys(("fp32", "bf16", "amp-fp16", "amp-bf16"), "reference_mismatch"),
    },
    reason="semantic: a fully padded row returns the -1e9 fill value instead of 0 (float16 cannot even hold -1e9: "
    "masked_fill raises)",
)
def filled_masked_max(x: Tensor, mask: Tensor) -> Tensor:
    return x.masked_fill(~mask, -1e9).amax(-1)


@stress.target(
    **_pool,
    dims={"L": (8, 16)},
    reference="torch",
    max_examples=400,
    expect={"fp16": "finite_forward"},
    reason="precision: the float16 sum of two values of 6e4 passes 65504 before the division by the count",
)
def summed_masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    kept = mask.to(x.dtype)
    return (x * kept).sum(-1) / kept.sum(-1).clamp_min(1)


@stress.target(**_pool, reference="torch")
def masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """The fix: -inf fill, and 0 where the row keeps nothing."""
    filled = x.masked_fill(~mask, -math.inf).amax(-1)
    return torch.where(mask.any(-1), filled, torch.zeros_like(filled))


@stress.target(**_pool, reference="torch")
def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """The fix: divide before summing, so no partial sum leaves the dtype."""
    kept = mask.to(x.dtype)
    count = kept.sum(-1, keepdim=True).clamp_min(1)
    return (x * (kept / count)).sum(-1)


# --- LayerNorm fused with the residual add ---------------------------------------------------------

_ln = dict(
    x=st.activations(("B", "D"), min_value=-1e3, max_value=1e3),
    residual=st.activations(("B", "D"), min_value=-1e3, max_value=1e3),
)
_ln_dims = {"D": (2, 16)}


@stress.target(
    **_ln,
    dims=_ln_dims,
    reference="torch",
    expect="reference_mismatch",
    reason="semantic: the residual is added after the normalisation instead of before it",
)
def late_residual_layer_norm_residual(x: Tensor, residual: Tensor) -> Tensor:
    with torch.autocast(x.device.type, enabled=False):
        return (F.layer_norm(x.float(), x.shape[-1:], eps=1e-5) + residual.float()).to(x.dtype)


@stress.target(
    **_ln,
    dims=_ln_dims,
    reference="torch",
    expect="fail",
    reason="precision: the variance as E[h²] - E[h]² cancels (negative, then NaN from the root) at a large common offset",
    max_examples=150,
)
def one_pass_layer_norm_residual(x: Tensor, residual: Tensor) -> Tensor:
    h = x + residual
    mean = h.mean(-1, keepdim=True)
    var = (h * h).mean(-1, keepdim=True) - mean * mean
    return (h - mean) * torch.rsqrt(var + 1e-5)


@stress.target(**_ln, dims=_ln_dims, reference="torch")
def layer_norm_residual(x: Tensor, residual: Tensor) -> Tensor:
    """The fix: the statistics of each row's differences from its first element (exact for close
    values, so a large common offset cancels before anything is rounded), in float32, two passes."""
    with torch.autocast(x.device.type, enabled=False):
        xf, rf = x.float(), residual.float()
        d = (xf - xf[..., :1]) + (rf - rf[..., :1])
        centred = d - d.mean(-1, keepdim=True)
        var = centred.pow(2).mean(-1, keepdim=True)
        return (centred * torch.rsqrt(var + 1e-5)).to(x.dtype)
