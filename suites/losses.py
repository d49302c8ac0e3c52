"""PyTorch's own losses (``torch.nn.functional``) over their real domains and edge cases.

Inputs are bounded where the loss's domain is bounded (probabilities in [0, 1], variances > 0)
and otherwise stay within ±1e4, a generous range for activations and logits; the adversarial
patterns (saturated and one-hot rows, exact 0/1 probabilities, duplicate rows, all targets
ignored, infeasible CTC alignments) are drawn on purpose. Targets that are data (labels, teacher
distributions) get no gradient (``wrt=``). Each expectation names the checks the harness finds
failing, and its reason says the mechanism; ``tests/test_atlas_proofs.py`` shows each one with
plain torch on a concrete input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _helpers import up  # the suites' folder is on sys.path

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
    expect={"fp16": "finite_forward"},
    reason="float16 nll_loss adds up the rows' losses in float16 before dividing by the batch: "
    "1e4-scale losses pass 65504 although their mean is representable",
)
def cross_entropy(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(input, target)


@stress.target(
    input=_logits,
    target=_classes,
    expect={"fp16": "finite_forward"},
    reason="float16 cross_entropy with label smoothing adds up 1e4-scale losses in float16 before "
    "dividing by the batch: the sum passes 65504 although the mean is representable",
)
def cross_entropy_label_smoothing(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(input, target, label_smoothing=0.1)


_padded = dict(
    input=_logits,
    target=st.targets(("B",), num_classes="C", ignore_index=-100),
    # a micro-batch of a few tokens, every one of them padding at times
    dims={"B": (1, 4)},
)


@stress.target(
    **_padded,
    expect="finite_forward",
    reason="with every target ignored the mean is over zero targets: 0/0 = NaN (PyTorch's documented behaviour)",
)
def cross_entropy_ignore_index(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(input, target, ignore_index=-100)


@stress.target(
    **_padded,
    expect="finite_forward",
    reason="with every target ignored the smoothed loss is a mean over zero targets: 0/0 = NaN",
)
def cross_entropy_label_smoothing_ignore_index(
    input: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    return F.cross_entropy(input, target, ignore_index=-100, label_smoothing=0.1)


@stress.target(
    input=st.probabilities(("B", "C")),
    target=_classes,
    expect=("finite_forward", "finite_gradients"),
    reason="log of an exact-zero probability is -inf (the loss when it is the target's), and its gradient 1/0 · 0 = NaN",
)
def nll_loss_of_log(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(input.log(), target)  # log of exact zeros


@stress.target(
    input=_probs,
    target=_probs,
    expect="finite_gradients",
    reason="the gradient w.r.t. the target is log(1 - p) - log(p) without the forward's clamp at "
    "-100: ±inf at exact 0/1 probabilities (float16 also divides 0 by max(p(1 - p), 1e-12) = 0)",
)
def binary_cross_entropy(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy(input, target)


@stress.target(
    input=st.logits(("B", "D"), **BIG),
    target=_probs,
    expect={"fp16": stress.Expect.may_fail("error", rate=1.0)},
    reason="float16 computes (1 - y)·x + max(-x, 0) + log(...): for large negative x the first two "
    "terms cancel to ulp(x) = 8, and a small target's loss y·|x| is lost",
)
def binary_cross_entropy_with_logits(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(input, target)


@stress.target(
    input=st.logits(("B", "C"), **BIG),
    target=st.probabilities(("B", "C")),
    wrt=("input",),  # the teacher's distribution is data
    expect={"fp16": "finite_forward"},
    reason="float16 batchmean adds up rows of 1e4-scale divergences in float16 before dividing by "
    "the batch: the sum passes 65504 although the mean is representable",
)
def kl_div(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.kl_div(F.log_softmax(input, -1), target, reduction="batchmean")


@stress.target(
    # regression outputs of a few hundred
    input=st.activations(("B", "D"), min_value=-300, max_value=300),
    target=st.activations(("B", "D"), min_value=-300, max_value=300),
    expect={"fp16": "finite_forward"},
    reason="float16 mse_loss squares each difference in float16: one |input - target| > 256 is inf "
    "although the mean of the squares is representable",
)
def mse_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(input, target)


@stress.target(**_pair)
def l1_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(input, target)


@stress.target(**_pair)
def smooth_l1_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(input, target, beta=1.0)


@stress.target(**_pair)
def huber_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.huber_loss(input, target, delta=1.0)


@stress.target(
    input1=st.embeddings(("B", "D"), **BIG),
    input2=st.embeddings(("B", "D"), **BIG),
    target=st.targets(("B",), num_classes=2),
    expect={"fp16": ("finite_forward", "finite_gradients", "error")},
    reason="float16: its eps=1e-8 rounds to 0, so a zero vector gives 0/0; |x|²·|y|² overflows "
    "once a norm passes 256, and x·y / sqrt(inf) gives a cosine of 0 for 1",
)
def cosine_embedding_loss(
    input1: torch.Tensor, input2: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    return F.cosine_embedding_loss(input1, input2, target * 2 - 1)


@stress.target(
    input1=st.activations(("B",), **BIG),
    input2=st.activations(("B",), **BIG),
    target=st.targets(("B",), num_classes=2),
)
def margin_ranking_loss(
    input1: torch.Tensor, input2: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    return F.margin_ranking_loss(input1, input2, target * 2 - 1)


@stress.target(
    anchor=st.embeddings(("B", "D"), **BIG),
    positive=st.embeddings(("B", "D"), **BIG),
    negative=st.embeddings(("B", "D"), **BIG),
    expect={
        "fp32": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
        "fp16": stress.Expect.may_fail("error", "gradient_error", rate=1.0),
        "bf16": ("error", "gradient_error"),
    },
    reason="the hinge of d(a, p) - d(a, n) + 1 subtracts two rounded distances: for a far anchor "
    "both are ~|a| and their difference keeps ulp(|a|) of error (1e-3 in float32 at 1e4, 8 in float16)",
)
def triplet_margin_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
) -> torch.Tensor:
    return F.triplet_margin_loss(anchor, positive, negative)


@stress.target(
    input=st.activations(("B", "D"), min_value=-20, max_value=20),
    target=st.tensors(("B", "D"), min_value=0, max_value=100),
    expect={"fp16": stress.Expect.may_fail("finite_forward", rate=0.9)},
    reason="exp(input) - target·input in float16: a log-rate above 11.09 makes its element inf, a "
    "failure where the mean is representable (one such element among four) and a limit where the "
    "mean is beyond 65504 too",
)
def poisson_nll_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.poisson_nll_loss(input, target, log_input=True)


@stress.target(
    **_pair,
    var=st.tensors(("B", "D"), min_value=1e-6, max_value=1e4),
    expect={"fp16": ("finite_forward", "finite_gradients")},
    reason="float16: (input - target)² overflows before it is divided by the variance, and the "
    "backward's 1/var is inf for var < 1.5e-5, so 0·inf = NaN where input = target",
)
def gaussian_nll_loss(input: torch.Tensor, target: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return F.gaussian_nll_loss(input, target, var)


@stress.target(
    log_probs=st.logits(("T", "B", "C"), **BIG),
    targets=st.targets(("B", "S"), num_classes="C"),
    dims={"C": (2, 6), "S": (1, 6), "T": (1, 8)},
    expect="finite_forward",
    reason="an infeasible alignment (a target longer than the input) has an infinite loss with zero_infinity=False",
)
def ctc_loss(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    t, b = log_probs.shape[:2]
    targets = targets.clamp_min(1)  # class 0 is the blank
    lengths = torch.full((b,), t, dtype=torch.long)
    target_lengths = torch.full(
        (b,), targets.shape[1], dtype=torch.long
    )  # may exceed T: infeasible
    # ctc_loss has no float16/bfloat16 CPU kernel: the log-probabilities in float32
    return F.ctc_loss(
        up(log_probs).log_softmax(-1), targets, lengths, target_lengths, zero_infinity=False
    )


@stress.target(
    log_probs=st.logits(
        ("T", "B", "C"), min_value=-100, max_value=100
    ),  # an acoustic model's logits
    labels=st.targets(("B", "S"), num_classes="C"),
    dims={"C": (2, 6), "S": (1, 4), "T": (8, 12)},  # always feasible: 2S - 1 <= T
)
def ctc_loss_empty_targets(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CTC where class 0 (the blank) marks no label: a row of zeros is an empty target (silence),
    whose loss is -log P(all blanks)."""
    t, b = log_probs.shape[:2]
    keep = labels > 0
    targets = labels[keep]  # the concatenated form: each row's labels, in order
    return F.ctc_loss(
        up(log_probs).log_softmax(-1),
        targets,
        torch.full((b,), t, dtype=torch.long),
        keep.sum(1),
        zero_infinity=False,
    )


@stress.target(
    input=st.logits(("B", "C"), **BIG),
    target=st.targets(("B", "C"), num_classes=2),
    expect={"fp16": stress.Expect.may_fail("finite_forward", rate=1.0)},
    reason="float16 sums the per-label losses in float16 before dividing by the number of labels: "
    "eight 1e4-scale losses pass 65504 although their mean is representable",
)
def multilabel_soft_margin_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.multilabel_soft_margin_loss(input, target.to(input.dtype))


@stress.target(
    input=st.logits(("B", "C"), **BIG),
    target=st.targets(("B", "C"), num_classes=2),
    expect="finite_forward",
    reason="log(1 + exp(-y·x)) is computed without softplus: exp overflows for -y·x > 88.7 (11.1 in "
    "float16, 709 in float64) although the loss is about |x|",
)
def soft_margin_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.soft_margin_loss(input, (target * 2 - 1).to(input.dtype))
