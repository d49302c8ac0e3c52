"""PyTorch's own losses (``torch.nn.functional``) over their real domains and edge cases.

Inputs are bounded where the loss's domain is bounded (probabilities in [0, 1], variances > 0)
and otherwise stay within ±1e4, a generous range for activations and logits; the adversarial
patterns (saturated and one-hot rows, exact 0/1 probabilities, duplicate rows, all targets
ignored, infeasible CTC alignments) are drawn on purpose. Each expectation was found by the
harness itself; its reason says what breaks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import stress
from stress import st

BIG = dict(min_value=-1e4, max_value=1e4)
_logits = st.logits(("B", "C"), **BIG)
_classes = st.targets(("B",), num_classes="C")
_pair = dict(input=st.activations(("B", "D"), **BIG), target=st.activations(("B", "D"), **BIG))
_probs = st.tensors(("B", "D"), min_value=0, max_value=1)


@stress.target(
    input=_logits,
    target=_classes,
    expect={"fp16": "may-fail"},
    reason="float16 cross_entropy of 1e4-scale logits can overflow inside the kernel although the loss (~1e4) is representable",
)
def cross_entropy(input, target):  # type: ignore[no-untyped-def]
    return F.cross_entropy(input, target)


@stress.target(
    input=_logits,
    target=_classes,
    expect={"fp16": "may-fail"},
    reason="label smoothing sums the log-probabilities of every class: that float16 sum of 1e4-scale values overflows",
)
def cross_entropy_label_smoothing(input, target):  # type: ignore[no-untyped-def]
    return F.cross_entropy(input, target, label_smoothing=0.1)


@stress.target(
    input=_logits,
    target=st.targets(("B",), num_classes="C", ignore_index=-100),
    expect={
        "fp32": "fail",
        "fp16": "fail",
        "bf16": "fail",
        "amp-fp16": "fail",
        "amp-bf16": "may-fail",
    },
    reason="with every target ignored the mean is over zero targets: 0/0 = NaN (PyTorch's documented behaviour)",
)
def cross_entropy_ignore_index(input, target):  # type: ignore[no-untyped-def]
    return F.cross_entropy(
        input, target, ignore_index=-100
    )  # every target ignored: 0/0 by definition


@stress.target(
    input=st.logits(("B", "C")),
    target=_classes,
    expect={"fp32": "may-fail", "fp16": "may-fail", "bf16": "may-fail", "amp-bf16": "may-fail"},
    reason="rows masked at finfo.min: the loss can lie beyond the dtype's max (float16: 65504; float32/bfloat16: finfo.min minus the row max overflows)",
)
def cross_entropy_masked_logits(input, target):  # type: ignore[no-untyped-def]
    return F.cross_entropy(input, target)  # rows masked at finfo.min, as attention masks do


@stress.target(
    input=st.probabilities(("B", "C")),
    target=_classes,
    expect="fail",
    reason="log of an exact-zero probability is -inf, and its gradient 1/0",
)
def nll_loss_of_log(input, target):  # type: ignore[no-untyped-def]
    return F.nll_loss(input.log(), target)  # log of exact zeros


@stress.target(
    input=_probs,
    target=_probs,
    expect="fail",
    reason="the backward divides (p - y) by max(p(1 - p), 1e-12): NaN at exact 0/1 probabilities",
)
def binary_cross_entropy(input, target):  # type: ignore[no-untyped-def]
    return F.binary_cross_entropy(input, target)


@stress.target(
    input=st.logits(("B", "D"), **BIG),
    target=_probs,
    expect={"fp16": "may-fail"},
    reason="float16 rounding of a large loss (~150 from 1e4-scale logits) exceeds the 1e-2 tolerance",
)
def binary_cross_entropy_with_logits(input, target):  # type: ignore[no-untyped-def]
    return F.binary_cross_entropy_with_logits(input, target)


@stress.target(
    input=st.logits(("B", "C"), **BIG),
    target=st.probabilities(("B", "C")),
    expect="fail",
    reason="target probabilities with exact zeros: the backward of target * log(target) is 0 * (-inf) = NaN",
)
def kl_div(input, target):  # type: ignore[no-untyped-def]
    return F.kl_div(F.log_softmax(input, -1), target, reduction="batchmean")


@stress.target(
    **_pair,
    expect={"fp16": "fail"},
    reason="the squared error of 1e4-scale values exceeds 65504 (a representability limit of float16)",
)
def mse_loss(input, target):  # type: ignore[no-untyped-def]
    return F.mse_loss(input, target)


@stress.target(**_pair)
def l1_loss(input, target):  # type: ignore[no-untyped-def]
    return F.l1_loss(input, target)


@stress.target(**_pair)
def smooth_l1_loss(input, target):  # type: ignore[no-untyped-def]
    return F.smooth_l1_loss(input, target, beta=1.0)


@stress.target(**_pair)
def huber_loss(input, target):  # type: ignore[no-untyped-def]
    return F.huber_loss(input, target, delta=1.0)


@stress.target(
    input1=st.embeddings(("B", "D"), **BIG),
    input2=st.embeddings(("B", "D"), **BIG),
    target=st.targets(("B",), num_classes=2),
    expect={"fp16": "fail", "bf16": "may-fail"},
    reason="its eps=1e-8 rounds to 0 in float16 (zero vectors divide 0 by 0) and squared norms of 1e4-scale embeddings overflow; in bfloat16 a zero vector's gradient is ~1e6 instead of 0",
)
def cosine_embedding_loss(input1, input2, target):  # type: ignore[no-untyped-def]
    return F.cosine_embedding_loss(input1, input2, target * 2 - 1)


@stress.target(
    input1=st.activations(("B",), **BIG),
    input2=st.activations(("B",), **BIG),
    target=st.targets(("B",), num_classes=2),
)
def margin_ranking_loss(input1, input2, target):  # type: ignore[no-untyped-def]
    return F.margin_ranking_loss(input1, input2, target * 2 - 1)


@stress.target(
    anchor=st.embeddings(("B", "D"), **BIG),
    positive=st.embeddings(("B", "D"), **BIG),
    negative=st.embeddings(("B", "D"), **BIG),
    expect={"fp32": "may-fail", "fp16": "may-fail", "bf16": "fail"},
    reason="pairwise_distance of embeddings under a large common offset cancels to a few bits in float16/bfloat16; rarely in float32 too",
)
def triplet_margin_loss(anchor, positive, negative):  # type: ignore[no-untyped-def]
    return F.triplet_margin_loss(anchor, positive, negative)


@stress.target(
    input=st.activations(("B", "D"), min_value=-20, max_value=20),
    target=st.tensors(("B", "D"), min_value=0, max_value=100),
    expect={"fp16": "may-fail"},
    reason="exp(input) overflows float16 for input > 11.09",
)
def poisson_nll_loss(input, target):  # type: ignore[no-untyped-def]
    return F.poisson_nll_loss(input, target, log_input=True)


@stress.target(
    **_pair,
    var=st.tensors(("B", "D"), min_value=1e-6, max_value=1e4),
    expect={"fp16": "fail"},
    reason="(input - target)**2 / var overflows float16 for small variances, and its backward is NaN",
)
def gaussian_nll_loss(input, target, var):  # type: ignore[no-untyped-def]
    return F.gaussian_nll_loss(input, target, var)


@stress.target(
    log_probs=st.logits(("T", "B", "C"), **BIG),
    targets=st.targets(("B", "S"), num_classes="C"),
    dims={"C": (2, 6), "S": (1, 6), "T": (1, 8)},
    expect="fail",
    reason="an infeasible alignment (target longer than the input) has an infinite loss with zero_infinity=False",
)
def ctc_loss(log_probs, targets):  # type: ignore[no-untyped-def]
    t, b = log_probs.shape[:2]
    targets = targets.clamp_min(1)  # class 0 is the blank
    lengths = torch.full((b,), t, dtype=torch.long)
    target_lengths = torch.full(
        (b,), targets.shape[1], dtype=torch.long
    )  # may exceed T: infeasible
    return F.ctc_loss(
        log_probs.float().log_softmax(-1), targets, lengths, target_lengths, zero_infinity=False
    )


@stress.target(
    input=st.logits(("B", "C"), **BIG),
    target=st.targets(("B", "C"), num_classes=2),
    expect={"fp16": "may-fail"},
    reason="the float16 sum over classes of 1e4-scale terms overflows",
)
def multilabel_soft_margin_loss(input, target):  # type: ignore[no-untyped-def]
    return F.multilabel_soft_margin_loss(input, target.to(input.dtype))


@stress.target(
    input=st.logits(("B", "C"), **BIG),
    target=st.targets(("B", "C"), num_classes=2),
    expect="fail",
    reason="log(1 + exp(-y*x)) is computed without softplus: exp overflows for -y*x > 88.7 (11.1 in float16) although the loss is finite",
)
def soft_margin_loss(input, target):  # type: ignore[no-untyped-def]
    return F.soft_margin_loss(input, (target * 2 - 1).to(input.dtype))
