"""Layers people train with: attention with causal and padding masks, a Transformer encoder
layer, RMSNorm and LayerNorm modules under autocast, Gumbel-softmax, a log-softmax over a
32k-token vocabulary, and a LoRA-style low-rank update.

Modules are module targets: their parameters are cast with the mode and get gradients checked.
Each is built after ``torch.manual_seed(0)`` so every run sees the same weights. Each
expectation names the checks the harness finds failing, and its reason says the mechanism;
``tests/test_atlas_proofs.py`` shows each one with plain torch on a concrete input.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F

import stress
from stress import st

# --- scaled dot-product attention, multi-head, with a causal mask and with a padding mask ------

_heads = dict(
    q=st.activations(("B", 2, "L", "E"), min_value=-10, max_value=10),
    k=st.activations(("B", 2, "L", "E"), min_value=-10, max_value=10),
    v=st.activations(("B", 2, "L", "E"), min_value=-10, max_value=10),
)
_attn_dims = {"B": (1, 4), "L": (1, 8), "E": (2, 8)}
# measured rates: 1000 examples find these under 10 of 10 seeds (suites/_rates.py)
_sdpa_expect = {
    "fp16": stress.Expect.may_fail("gradient_error", rate=1.0),
    "bf16": stress.Expect.may_fail("gradient_error", rate=1.0),
    "amp-fp16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
    "amp-bf16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
}
_sdpa_reason = (
    "the backward of the softmax cancels terms of size |q·k| in float16/bfloat16: on nearly "
    "tied scores the gradients of q and k keep a few bits; under autocast the float32 inputs are "
    "rounded to 16 bits too, so the output drifts. Which inputs cross the tolerance depends on "
    "the CPU's kernels"
)


@stress.target(
    **_heads,
    dims=_attn_dims,
    expect=_sdpa_expect,
    reason=_sdpa_reason,
)
def sdpa_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@stress.target(
    **_heads,
    keep=st.masks(("B", "L")),
    dims=_attn_dims,
    expect=_sdpa_expect,
    reason=_sdpa_reason,
)
def sdpa_padding(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor
) -> torch.Tensor:
    """A key-padding mask (True on real tokens) broadcast over heads and queries."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])


# --- a Transformer encoder layer ---------------------------------------------------------------


class EncoderLayer(torch.nn.Module):
    """``nn.TransformerEncoderLayer`` (post-norm, ReLU, no dropout) over padded sequences."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.TransformerEncoderLayer(
            d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.layer(x, src_key_padding_mask=~keep)


transformer_encoder_layer = stress.target(
    EncoderLayer(),
    x=st.activations(("B", "L", 16), min_value=-10, max_value=10),
    keep=st.masks(("B", "L")),
    dims={"B": (1, 4), "L": (1, 8)},
    expect={
        "fp16": stress.Expect.may_fail("gradient_error", rate=1.0),
        "bf16": stress.Expect.may_fail("gradient_error", rate=1.0),
        "amp-fp16": stress.Expect.may_fail("gradient_error", rate=1.0),
        "amp-bf16": "gradient_error",
    },
    reason="16-bit matmuls and attention (bfloat16's 8 bits above all): the gradients of the "
    "feed-forward weights and of LayerNorm's scale sum many rounded products that cancel",
    name="layers.transformer_encoder_layer",
)

# --- RMSNorm and LayerNorm modules under autocast ------------------------------------------------


def _norm_module(cls: Any, **kwargs: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    module = cls(16, **kwargs)
    with torch.no_grad():  # a trained scale, not the all-ones initialisation
        module.weight.normal_(1.0, 0.1)
    return module


_amp = ("amp-fp16", "amp-bf16")

rms_norm_module = stress.target(
    _norm_module(torch.nn.RMSNorm, eps=1e-6),  # an explicit eps: the default depends on the dtype
    x=st.activations(("B", "L", 16), min_value=-1e4, max_value=1e4),
    dims={"B": (1, 4), "L": (1, 8)},
    modes=_amp,
    name="layers.rms_norm_module",
)

layer_norm_module = stress.target(
    _norm_module(torch.nn.LayerNorm, eps=1e-5),
    input=st.activations(("B", "L", 16), min_value=-1e4, max_value=1e4),
    dims={"B": (1, 4), "L": (1, 8)},
    modes=_amp,
    name="layers.layer_norm_module",
)

# --- Gumbel-softmax with its noise given -------------------------------------------------------


@stress.target(
    logits=st.logits(("B", "C"), min_value=-30, max_value=30),
    noise=st.tensors(("B", "C"), min_value=1e-2, max_value=20.0),  # Exponential(1) samples
    tau=st.temperatures(0.1, 1.0),
    wrt=("logits",),
    expect={
        "fp16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
        "bf16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
    },
    reason="(logits + gumbels) / tau is rounded to float16/bfloat16 before the softmax: an error "
    "of ulp(30)/tau in the scores moves weights of near-tied classes",
)
def gumbel_softmax(logits: torch.Tensor, noise: torch.Tensor, tau: float) -> torch.Tensor:
    """``F.gumbel_softmax(logits, tau, hard=False)`` itself, its Exponential(1) draw
    (``Tensor.exponential_``) replaced by ``noise``: the mode's run and the float64 reference see
    the same (rounded) noise."""

    def given(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.copy_(noise.detach())

    with mock.patch.object(torch.Tensor, "exponential_", given):
        return F.gumbel_softmax(logits, tau=tau, hard=False)


# --- a log-softmax over a 32k-token vocabulary ---------------------------------------------------


@stress.target(
    logits=st.logits(("B", 32000), min_value=-100, max_value=100),
    dims={"B": (1, 2)},
)
def log_softmax_32k(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits, dim=-1)


# --- a LoRA-style low-rank update ----------------------------------------------------------------


class LoRALinear(torch.nn.Module):
    """``x @ W + scale · (x @ A) @ B``: a frozen base weight ``W`` (a buffer) and a rank-4 update."""

    def __init__(self, d_in: int = 16, d_out: int = 16, rank: int = 4, alpha: float = 8.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.W: torch.Tensor
        self.register_buffer("W", torch.randn(d_in, d_out) / d_in**0.5)
        self.A = torch.nn.Parameter(torch.randn(d_in, rank) / d_in**0.5)
        # trained away from its zero init
        self.B = torch.nn.Parameter(torch.randn(rank, d_out) * 0.01)
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W + self.scale * (x @ self.A) @ self.B


lora_linear = stress.target(
    LoRALinear(),
    x=st.activations(("B", "L", 16), min_value=-100, max_value=100),
    dims={"B": (1, 4), "L": (1, 8)},
    name="layers.lora_linear",
)
