"""Training steps under injected faults: the known-bad steps of the post-mortems, and the same
model trained through ``stress.GuardedStep``.

Each step factory ``make_step(model, optimizer, mode)`` returns ``step(batch, loss_fn)``; the
harness builds the model and optimizer in the mode, injects faults (NaN/Inf batches, loss
spikes, infinite gradients, fp16 overflow, zero gradients, a batch of one) and checks that
parameters and optimizer state stay finite, that faulty steps are skipped without a trace, that
clipping holds, that training does not stall, and that accumulation is consistent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import stress
from stress import st

ACCUMULATION = 4


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def classification(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(model(batch["x"]).float(), batch["y"])


def adam(params):  # type: ignore[no-untyped-def]
    # eps=1e-4: Adam's default 1e-8 rounds to 0 in float16 (see adam_pure_fp16 below)
    return torch.optim.Adam(params, lr=1e-3, eps=1e-4)


def sgd(params):  # type: ignore[no-untyped-def]
    # plain SGD: an update proportional to the gradient, so accumulation errors show
    return torch.optim.SGD(params, lr=0.1)


_batch = dict(
    x=st.activations(("B", 8), min_value=-1, max_value=1), y=st.targets(("B",), num_classes=4)
)
_common = dict(model=mlp, loss=classification, batch=_batch, dims={"B": (2, 8)}, warmup_steps=6)


# --- known-bad steps ------------------------------------------------------------------------


@stress.step_target(
    **_common,
    optimizer=sgd,
    accumulation_steps=ACCUMULATION,
    faults=("none",),
    expect="fail",
    reason="seed 001: the loss is divided by the accumulation steps only on the first micro-batch",
)
def first_micro_batch_scaling(model, optimizer, mode):  # type: ignore[no-untyped-def]
    seen = [0]

    def step(batch, loss_fn):  # type: ignore[no-untyped-def]
        loss = loss_fn(model, batch)
        if seen[0] == 0:  # the division sat inside a debug block for the first batch
            loss = loss / ACCUMULATION
        loss.backward()
        seen[0] += 1
        if seen[0] % ACCUMULATION == 0:
            optimizer.step()
            optimizer.zero_grad()

    return step


@stress.step_target(
    **_common,
    optimizer=adam,
    faults=("nan_batch", "inf_grad"),
    expect="fail",
    reason="seed 004: optimizer.step() runs on a NaN loss and infinite gradients",
)
def step_on_nonfinite_loss(model, optimizer, mode):  # type: ignore[no-untyped-def]
    def step(batch, loss_fn):  # type: ignore[no-untyped-def]
        loss_fn(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


@stress.step_target(
    **_common,
    optimizer=adam,
    faults=("nan_batch", "loss_spike"),
    expect="fail",
    reason="a 'skip' that zeroes the gradients but still calls optimizer.step(): Adam's moments and step count advance",
)
def skip_that_advances_adam(model, optimizer, mode):  # type: ignore[no-untyped-def]
    def step(batch, loss_fn):  # type: ignore[no-untyped-def]
        loss = loss_fn(model, batch)
        if torch.isfinite(loss) and loss < 1e3:
            loss.backward()
        optimizer.step()  # the bug: stepping on zero gradients still moves Adam
        optimizer.zero_grad(
            set_to_none=False
        )  # (with None gradients Adam would leave the parameter alone)

    return step


@stress.step_target(
    **{**_common, "batch": dict(_batch, x=st.activations(("B", 8), min_value=-100, max_value=100))},
    optimizer=sgd,
    faults=("none",),
    expect={"fp16": "fail", "amp-fp16": "fail"},
    reason="fixed loss scaling by 65536 overflows float16 gradients (autocast's fp16 matmuls too) and the step is taken anyway",
)
def fixed_loss_scale(model, optimizer, mode):  # type: ignore[no-untyped-def]
    def step(batch, loss_fn):  # type: ignore[no-untyped-def]
        (loss_fn(model, batch) * 65536.0).backward()
        for p in model.parameters():
            p.grad /= 65536.0
        optimizer.step()
        optimizer.zero_grad()

    return step


@stress.step_target(
    **_common,
    optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
    faults=("none", "zero_grad"),
    expect={"fp16": "fail"},
    reason="Adam's eps=1e-8 rounds to 0 in float16: a zero second moment divides 0 by 0",
)
def adam_pure_fp16(model, optimizer, mode):  # type: ignore[no-untyped-def]
    guard = stress.GuardedStep(model, optimizer, warmup=4)

    def step(batch, loss_fn):  # type: ignore[no-untyped-def]
        return guard.step(loss_fn(model, batch))

    return step


# --- the same model through GuardedStep: must pass everywhere ---------------------------------

guarded = stress.step_target(**_common, optimizer=adam, max_grad_norm=1.0, name="training.guarded")(
    stress.guarded_step(max_grad_norm=1.0, warmup=4)
)

guarded_accumulation = stress.step_target(
    **_common,
    optimizer=sgd,
    accumulation_steps=ACCUMULATION,
    max_grad_norm=1.0,
    name="training.guarded_accumulation",
)(stress.guarded_step(accumulation_steps=ACCUMULATION, max_grad_norm=1.0, warmup=4))
