"""Training steps as users write them, under injected faults: the known-bad steps of the
post-mortems beside their fixes, and the same model trained through ``stress.GuardedStep``.

Each step factory ``make_step(model, optimizer, mode)`` returns ``step(batch, loss_fn)``: one
call does what a training loop does with one batch — here often splitting it into micro-batches
itself and calling ``optimizer.step()`` once, as nanoGPT's loop does. The harness builds the
model and optimizer in the mode, injects faults (NaN/Inf batches, loss spikes, infinite
gradients, float16 overflow, zero gradients, a batch of one) and checks that parameters and
optimizer state stay finite, that faulty steps are skipped without a trace, that clipping holds,
that training does not stall, and that every clean step lands where one float64 step of the same
optimizer on the whole batch lands (``step_equivalence``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

import stress
from stress import Mode, st

MICRO_BATCHES = 4
Batch = dict[str, torch.Tensor]
LossFn = Any


def mlp() -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def classification(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return F.cross_entropy(model(batch["x"]).float(), batch["y"])


def adam(params: Any) -> torch.optim.Optimizer:
    # eps=1e-4: Adam's default 1e-8 rounds to 0 in float16 (see adam_pure_fp16 below). Even so, on
    # pure-float16 parameters its second moment (1e-3·g², state kept in float16) underflows for
    # gradients below ~8e-3, and the update grows up to lr·g/eps: 10-40 times too large
    return torch.optim.Adam(params, lr=1e-3, eps=1e-4)


def momentum_sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def sgd(params: Any) -> torch.optim.Optimizer:
    # plain SGD: an update proportional to the gradient, so a wrongly scaled gradient shows
    return torch.optim.SGD(params, lr=0.1)


def micro_batches(batch: Batch) -> list[Batch]:
    """``torch.chunk`` of every entry: uneven when the batch size is not a multiple of 4."""
    parts = [torch.chunk(v, MICRO_BATCHES) for v in batch.values()]
    return [dict(zip(batch, chunk, strict=True)) for chunk in zip(*parts, strict=True)]


_batch = dict(
    x=st.activations(("B", 8), min_value=-1, max_value=1), y=st.targets(("B",), num_classes=4)
)
_common: dict[str, Any] = dict(
    model=mlp, loss=classification, batch=_batch, dims={"B": (1, 12)}, warmup_steps=4
)


# --- seed 001, written as nanoGPT's loop is: micro-batches inside one step ----------------------


@stress.step_target(
    **_common,
    optimizer=sgd,
    faults=("none",),
    expect="step_equivalence",
    reason="seed 001: the loss is divided by the number of micro-batches on the first micro-batch only",
)
def first_micro_batch_scaling(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode
) -> Any:
    def step(batch: Batch, loss_fn: LossFn) -> None:
        parts = micro_batches(batch)
        for i, micro in enumerate(parts):
            loss = loss_fn(model, micro)
            if i == 0:  # the division sat inside a debug block for the first batch
                loss = loss / len(parts)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


@stress.step_target(**_common, optimizer=sgd, faults=("none",))
def micro_batch_accumulation(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode
) -> Any:
    """The fix: each micro-batch's mean weighted by its share of the rows (uneven chunks too)."""

    def step(batch: Batch, loss_fn: LossFn) -> None:
        rows = len(batch["x"])
        for micro in micro_batches(batch):
            (loss_fn(model, micro) * (len(micro["x"]) / rows)).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


# --- token-weighted losses: the gradient-accumulation normalisation bug of 2024 -----------------


def token_classifier() -> torch.nn.Module:
    return torch.nn.Linear(8, 4)


def token_loss(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy summed over the tokens the mask keeps, and how many it keeps."""
    logits = model(batch["x"]).float()
    per_token = F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten(), reduction="none")
    keep = batch["mask"].flatten()
    return (per_token * keep).sum(), keep.sum()


_tokens: dict[str, Any] = dict(
    model=token_classifier,
    loss=token_loss,
    batch=dict(
        x=st.activations(("B", "T", 8), min_value=-1, max_value=1),
        y=st.targets(("B", "T"), num_classes=4),
        mask=st.masks(("B", "T")),
    ),
    dims={"B": (1, 8), "T": (1, 6)},
    warmup_steps=4,
    optimizer=sgd,
    faults=("none",),
)


@stress.step_target(
    **_tokens,
    expect=("step_equivalence", "finite_state"),
    reason="each micro-batch's loss is its own token mean, then micro-batches are averaged: tokens of "
    "short micro-batches weigh more (a fully masked one is 0/0)",
)
def per_micro_batch_token_mean(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode
) -> Any:
    def step(batch: Batch, loss_fn: LossFn) -> None:
        parts = micro_batches(batch)
        for micro in parts:
            total, count = loss_fn(model, micro)
            (total / count / len(parts)).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


@stress.step_target(**_tokens)
def global_token_count(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode) -> Any:
    """The fix: every micro-batch's token sum divided by the whole batch's token count."""

    def step(batch: Batch, loss_fn: LossFn) -> None:
        count = batch["mask"].sum().clamp_min(1)
        for micro in micro_batches(batch):
            total, _ = loss_fn(model, micro)
            (total / count).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


# --- loss scaling: a static factor against torch.amp.GradScaler ---------------------------------

_scaled = {
    **_common,
    "batch": dict(_batch, x=st.activations(("B", 8), min_value=-100, max_value=100)),
}


def slow_sgd(params: Any) -> torch.optim.Optimizer:
    # inputs up to 100 make lr=0.1 diverge within the warm-up (logits of 1e7, where any dtype's
    # softmax is a tie-break); a learning rate for that input scale keeps the model trainable
    return torch.optim.SGD(params, lr=1e-3)


@stress.step_target(
    **_scaled,
    optimizer=slow_sgd,
    faults=("none",),
    expect={"fp16": "finite_state", "amp-fp16": "finite_state"},
    reason="fixed loss scaling by 65536 overflows float16 gradients (autocast's fp16 matmuls too) and the step is taken anyway",
)
def fixed_loss_scale(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode) -> Any:
    def step(batch: Batch, loss_fn: LossFn) -> None:
        (loss_fn(model, batch) * 65536.0).backward()
        for p in model.parameters():
            assert p.grad is not None
            p.grad /= 65536.0
        optimizer.step()
        optimizer.zero_grad()

    return step


@stress.step_target(**_scaled, optimizer=slow_sgd, faults=("none",))
def grad_scaler(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode) -> Any:
    """The fix: ``torch.amp.GradScaler`` backs off and skips the steps whose gradients overflow
    under autocast; it cannot unscale the float16 gradients of pure-fp16 parameters, so there the
    step checks the gradients itself and skips a step on any Inf/NaN."""
    scaler = torch.amp.GradScaler(mode.device, enabled=mode.name == "amp-fp16")

    def step(batch: Batch, loss_fn: LossFn) -> None:
        scaler.scale(loss_fn(model, batch)).backward()
        finite = all(
            p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters()
        )
        if scaler.is_enabled() or finite:
            scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()

    return step


# --- the post-mortems' other steps --------------------------------------------------------------


@stress.step_target(
    **_common,
    optimizer=adam,
    faults=("nan_batch", "inf_grad"),
    expect={
        "fp16": ("finite_state", "step_equivalence"),
        **dict.fromkeys(("fp32", "bf16", "amp-fp16", "amp-bf16"), "finite_state"),
    },
    reason="seed 004: optimizer.step() runs on a NaN loss and infinite gradients (and in float16, Adam's second moment underflows)",
)
def step_on_nonfinite_loss(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode
) -> Any:
    def step(batch: Batch, loss_fn: LossFn) -> None:
        loss_fn(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


@stress.step_target(
    **_common,
    optimizer=adam,
    faults=("nan_batch", "loss_spike"),
    expect={
        "fp16": ("skip_is_noop", "step_equivalence"),
        **dict.fromkeys(("fp32", "bf16", "amp-fp16", "amp-bf16"), "skip_is_noop"),
    },
    reason="a 'skip' that zeroes the gradients but still calls optimizer.step(): Adam's moments and step count advance (and in float16, Adam's second moment underflows)",
)
def skip_that_advances_adam(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode
) -> Any:
    def step(batch: Batch, loss_fn: LossFn) -> None:
        loss = loss_fn(model, batch)
        if torch.isfinite(loss) and loss < 1e3:
            loss.backward()
        optimizer.step()  # the bug: stepping on zero gradients still moves Adam
        optimizer.zero_grad(
            set_to_none=False
        )  # (with None gradients Adam would skip the parameter)

    return step


@stress.step_target(
    **_common,
    optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
    faults=("none", "zero_grad"),
    expect={
        "fp16": ("finite_state", "step_equivalence"),
        "amp-fp16": stress.Expect.may_fail("step_equivalence", rate=1.0),
    },
    reason="Adam's second moment underflows in float16 state and its eps=1e-8 rounds to 0: updates of lr·g/0 — too large, then 0/0. "
    "Under float16 autocast without a GradScaler, the weight gradients of tiny inputs are subnormal in the float16 backward, "
    "and Adam turns each lost gradient into a lost lr-sized update",
)
def adam_pure_fp16(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode) -> Any:
    guard = stress.GuardedStep(model, optimizer, warmup=4)

    def step(batch: Batch, loss_fn: LossFn) -> Any:
        return guard.step(loss_fn(model, batch))

    return step


# --- the same model through GuardedStep: must pass everywhere ---------------------------------

guarded = stress.step_target(
    **_common, optimizer=momentum_sgd, max_grad_norm=1.0, name="training.guarded"
)(stress.guarded_step(max_grad_norm=1.0, warmup=4))

guarded_accumulation = stress.step_target(
    **_common, optimizer=sgd, max_grad_norm=1.0, name="training.guarded_accumulation"
)(stress.guarded_step(accumulation_steps=MICRO_BATCHES, max_grad_norm=1.0, warmup=4))
