"""PyTorch's normalizations, softmax family and attention, with near-constant rows, large
offsets, zero vectors and fully masked rows drawn on purpose. Inputs stay within ±1e4.
Each expectation was found by the harness itself; its reason says what breaks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import stress
from stress import st

BIG = dict(min_value=-1e4, max_value=1e4)
_rows = st.activations(("B", "D"), **BIG)
_rows_dims = {"D": (2, 16)}


@stress.target(
    x=_rows,
    dims=_rows_dims,
    expect={"fp16": "may-fail", "bf16": "may-fail"},
    reason="the float16 backward of a two-element row: terms of size 1/sigma cancel to a wrong gradient (rarely in bfloat16 too)",
)
def layer_norm(x):  # type: ignore[no-untyped-def]
    return F.layer_norm(x, x.shape[-1:])


@stress.target(x=_rows, dims=_rows_dims)
def rms_norm(x):  # type: ignore[no-untyped-def]
    # an explicit eps: the default, finfo(dtype).eps, would differ between the mode and float64
    return F.rms_norm(x, x.shape[-1:], eps=1e-6)


@stress.target(x=st.activations(("B", "C"), **BIG), dims={"B": (2, 16)})
def batch_norm_train(x):  # type: ignore[no-untyped-def]
    return F.batch_norm(x, None, None, training=True)


@stress.target(x=st.activations(("B", "C"), **BIG))
def batch_norm_eval(x):  # type: ignore[no-untyped-def]
    c = x.shape[1]
    mean, var = (
        torch.zeros(c, dtype=x.dtype, device=x.device),
        torch.ones(c, dtype=x.dtype, device=x.device),
    )
    return F.batch_norm(x, mean, var, training=False)


@stress.target(x=st.activations(("B", 4, "L"), **BIG), dims={"L": (2, 8)})
def group_norm(x):  # type: ignore[no-untyped-def]
    return F.group_norm(x, num_groups=2)


@stress.target(
    x=st.activations(("B", "C", "L"), **BIG),
    dims={"L": (2, 8)},
    expect={"fp16": "fail", "bf16": "may-fail"},
    reason="statistics over two positions rounded to float16/bfloat16: near-constant rows lose their spread, and the gradient with it",
)
def instance_norm(x):  # type: ignore[no-untyped-def]
    return F.instance_norm(x)


@stress.target(
    x=st.embeddings(("B", "D"), **BIG),
    expect={"fp16": "fail", "bf16": "may-fail"},
    reason="its eps=1e-12 rounds to 0 in float16: a zero vector divides 0 by 0; in bfloat16 the gradient of a nearly axis-aligned vector cancels",
)
def normalize(x):  # type: ignore[no-untyped-def]
    return F.normalize(x, dim=-1)


@stress.target(
    x=st.embeddings(("B", "D"), **BIG),
    y=st.embeddings(("B", "D"), **BIG),
    expect={"fp16": "fail", "amp-fp16": "may-fail"},
    reason="squared norms of tiny vectors underflow to 0 in float16: 0/0; under amp-fp16 the gradient of nearly parallel vectors cancels",
)
def cosine_similarity(x, y):  # type: ignore[no-untyped-def]
    return F.cosine_similarity(x, y, dim=-1)


@stress.target(
    x=st.logits(("B", "C"), **BIG),
    keep=st.masks(("B", "C")),
    expect="fail",
    reason="a fully masked row (all -inf) has no softmax: NaN in every mode",
)
def masked_softmax(x, keep):  # type: ignore[no-untyped-def]
    return torch.softmax(x.masked_fill(~keep, -math.inf), dim=-1)


@stress.target(
    x=st.logits(("B", "C")),
    expect={"fp16": "may-fail", "bf16": "may-fail"},
    reason="rows masked at finfo.min: log-probabilities below the dtype's min are not representable (-inf)",
)
def log_softmax(x):  # type: ignore[no-untyped-def]
    return torch.log_softmax(x, dim=-1)  # rows masked at finfo.min, as attention masks do


@stress.target(
    x=st.logits(("B", "C"), **BIG),
    expect={"fp16": "may-fail", "bf16": "may-fail"},
    reason="near-tied maxima become exact ties when rounded to float16/bfloat16, splitting the gradient (a softmax) 0.5/0.5",
)
def logsumexp(x):  # type: ignore[no-untyped-def]
    return torch.logsumexp(x, dim=-1)


_qkv = dict(
    q=st.activations(("B", "L", "E"), min_value=-100, max_value=100),
    k=st.activations(("B", "L", "E"), min_value=-100, max_value=100),
    v=st.activations(("B", "L", "E"), min_value=-100, max_value=100),
    keep=st.masks(("B", "L")),
)


@stress.target(**_qkv, dims={"E": (2, 8)})
def scaled_dot_product_attention(q, k, v, keep):  # type: ignore[no-untyped-def]
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=keep[:, None, :]
    )  # padding mask over keys


class SelfAttention(torch.nn.Module):
    """``nn.MultiheadAttention`` over padded sequences (``keep`` is True on real tokens)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mha = torch.nn.MultiheadAttention(embed_dim=8, num_heads=2, batch_first=True)

    def forward(self, x, keep):  # type: ignore[no-untyped-def]
        return self.mha(x, x, x, key_padding_mask=~keep, need_weights=False)[0]


multihead_attention = stress.target(
    SelfAttention(),
    x=st.activations(("B", "L", 8), min_value=-100, max_value=100),
    keep=st.masks(("B", "L")),
    name="normalization.multihead_attention",
    expect={"bf16": "may-fail", "amp-bf16": "may-fail"},
    reason="bfloat16 attention over padded rows: the in-projection bias gradient accumulates rounding beyond the tolerance",
)
