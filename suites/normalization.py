"""PyTorch's normalizations, softmax family and attention, with near-constant rows, large
offsets, zero vectors and fully masked rows drawn on purpose. Inputs stay within ±1e4.

Each expectation names the checks the harness finds failing, and its reason says the mechanism;
``tests/test_atlas_proofs.py`` shows each one with plain torch on a concrete input. A failure in
float32 is not the dtype's fault: the float64 result on the same float32 inputs is what a
careful float32 implementation (statistics of the shifted row, a max-subtracted softmax) gets.
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
    expect={
        "fp32": ("error", "gradient_error"),
        "fp16": "gradient_error",
        "bf16": "gradient_error",
    },
    reason="the row mean is rounded before it is subtracted: a common offset 1e4 times the spread "
    "leaves the normalised values 1e-4 off in float32, and the backward's terms of size 1/sigma "
    "cancel to a wrong gradient in float16/bfloat16",
)
def layer_norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:])


@stress.target(x=_rows, dims=_rows_dims)
def rms_norm(x: torch.Tensor) -> torch.Tensor:
    # an explicit eps: the default, finfo(dtype).eps, would differ between the mode and float64
    return F.rms_norm(x, x.shape[-1:], eps=1e-6)


@stress.target(
    x=st.activations(("B", "C"), **BIG),
    dims={"B": (2, 16)},
    expect={
        "fp32": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
        "fp16": ("error", "gradient_error"),
        "bf16": ("error", "gradient_error"),
    },
    reason="the batch mean comes out off by ~1e-8 relative (a constant batch of 1e4: 1e4 - 8.5e-5) "
    "and 1/sqrt(var + 1e-5) amplifies it: 0.027 instead of 0 in float32; in float16/bfloat16 "
    "a near-constant batch loses its spread, and the backward's terms of size 1/sigma cancel",
)
def batch_norm_train(x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, None, None, training=True)


@stress.target(x=st.activations(("B", "C"), **BIG))
def batch_norm_eval(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    mean, var = (
        torch.zeros(c, dtype=x.dtype, device=x.device),
        torch.ones(c, dtype=x.dtype, device=x.device),
    )
    return F.batch_norm(x, mean, var, training=False)


@stress.target(
    x=st.activations(("B", 4, "L"), **BIG),
    dims={"L": (2, 8)},
    expect={
        "fp32": ("error", "gradient_error"),
        "fp16": stress.Expect.may_fail("gradient_error", rate=1.0),
        "bf16": "gradient_error",
    },
    reason="the group mean is rounded before it is subtracted: a common offset 1e4 times the "
    "spread leaves the output 1e-4 off in float32; the backward cancels terms of size 1/sigma",
)
def group_norm(x: torch.Tensor) -> torch.Tensor:
    return F.group_norm(x, num_groups=2)


@stress.target(
    x=st.activations(("B", "C", "L"), **BIG),
    dims={"L": (2, 8)},
    expect={
        "fp32": ("error", "gradient_error"),
        "fp16": ("error", "gradient_error"),
        "bf16": ("error", "gradient_error"),
        "amp-fp16": stress.Expect.limit("error"),
    },
    reason="as batch_norm: the mean of a constant 1e4 row comes out 8.5e-5 off, 0.027 instead of "
    "0 after 1/sqrt(var + 1e-5) in float32; in 16 bits rows over two positions lose their spread "
    "and the gradient with it. Under amp-fp16 the same 0.027 is judged at float16's eps, where a "
    "thousandth of an eps moves the float64 result by 0.95: a limit (var = 0 is a kink)",
)
def instance_norm(x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x)


@stress.target(
    x=st.embeddings(("B", "D"), **BIG),
    expect={
        "fp16": ("finite_forward", "finite_gradients", "gradient_error"),
        "bf16": stress.Expect.may_fail("gradient_error", rate=1.0),
    },
    reason="its eps=1e-12 rounds to 0 in float16: a zero vector divides 0 by 0, and the squared "
    "norm of a small vector underflows",
)
def normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


@stress.target(
    x=st.embeddings(("B", "D"), **BIG),
    y=st.embeddings(("B", "D"), **BIG),
    expect={
        "fp16": ("finite_forward", "finite_gradients", "gradient_error"),
        "bf16": stress.Expect.may_fail("gradient_error", rate=1.0),
    },
    reason="float16: squared norms of tiny vectors underflow to 0 (0/0), or keep a few bits (a "
    "wrong gradient), and of 1e4-scale vectors overflow; its eps=1e-8 rounds to 0",
)
def cosine_similarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(x, y, dim=-1)


@stress.target(
    x=st.logits(("B", "C"), **BIG),
    keep=st.masks(("B", "C")),
    expect="finite_forward",
    reason="a fully masked row (all -inf) has no softmax: NaN in every mode",
)
def masked_softmax(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x.masked_fill(~keep, -math.inf), dim=-1)


@stress.target(x=st.logits(("B", "C"), **BIG))
def log_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x, dim=-1)


@stress.target(
    x=st.logits(("B", "C"), **BIG),
    expect={"fp16": "gradient_error", "bf16": stress.Expect.may_fail("gradient_error", rate=1.0)},
    reason="the backward is exp(x - logsumexp(x)) with the forward's logsumexp rounded to the "
    "dtype: at |x| ~ 1e4 (ulp 8 in float16, 64 in bfloat16) log(2) of two tied maxima is lost "
    "and each gets weight 1 instead of 1/2",
)
def logsumexp(x: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(x, dim=-1)


_qkv = dict(
    q=st.activations(("B", "L", "E"), min_value=-100, max_value=100),
    k=st.activations(("B", "L", "E"), min_value=-100, max_value=100),
    v=st.activations(("B", "L", "E"), min_value=-100, max_value=100),
    keep=st.masks(("B", "L")),
)


@stress.target(
    **_qkv,
    dims={"E": (2, 8)},
    expect={
        "amp-fp16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
        "amp-bf16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
    },
    reason="under CPU autocast q·k runs in float16/bfloat16: scores of 100-scale vectors keep "
    "ulp(|q·k|) of error, which the softmax turns into wrong attention weights",
)
def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor
) -> torch.Tensor:
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=keep[:, None, :]
    )  # padding mask over keys


class SelfAttention(torch.nn.Module):
    """``nn.MultiheadAttention`` over padded sequences (``keep`` is True on real tokens)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mha = torch.nn.MultiheadAttention(embed_dim=8, num_heads=2, batch_first=True)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, key_padding_mask=~keep, need_weights=False)[0]


multihead_attention = stress.target(
    SelfAttention(),
    x=st.activations(("B", "L", 8), min_value=-100, max_value=100),
    keep=st.masks(("B", "L")),
    name="normalization.multihead_attention",
    expect={
        "fp16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
        "bf16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
        "amp-fp16": stress.Expect.may_fail("finite_gradients", "error", "gradient_error", rate=1.0),
        "amp-bf16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
    },
    reason="tokens with a large common offset project to nearly equal queries and keys: the "
    "backward of the softmax cancels terms of size |q·k| and the 16-bit gradients of the "
    "in-projection keep none of the difference; the 16-bit scores |q·k|, rounded by more than "
    "their differences, also move the softmax weights of the output; under float16 autocast "
    "the in-projection's weight gradient sums hundreds of products up to ~650 past 65504",
)
