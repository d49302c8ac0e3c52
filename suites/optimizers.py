"""One optimizer step of SGD, Adam and AdamW on parameters kept in float16 or bfloat16 ("pure"
low-precision training, no float32 master weights), with float32 as the control.

Each step is the plain one: ``loss_fn(model, batch).backward(); optimizer.step();
optimizer.zero_grad()``, with no injected faults. The harness compares every step with one
float64 step of the same optimizer from the same state (``step_equivalence``) and checks that
parameters and optimizer state stay finite (``finite_state``). The optimizer's state has the
parameters' dtype, so Adam's second moment and its ``eps`` live in float16 or bfloat16 too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from _helpers import up  # the suites' folder is on sys.path

import stress
from stress import Mode, st

Batch = dict[str, torch.Tensor]


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def classification(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return F.cross_entropy(up(model(batch["x"])), batch["y"])


_common: dict[str, Any] = dict(
    model=mlp,
    loss=classification,
    batch=dict(
        x=st.activations(("B", 8), min_value=-1, max_value=1), y=st.targets(("B",), num_classes=4)
    ),
    dims={"B": (1, 12)},
    warmup_steps=4,
    faults=("none",),
    modes=("fp32", "fp16", "bf16"),
)


def plain_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: Mode) -> Any:
    def step(batch: Batch, loss_fn: Any) -> None:
        loss_fn(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


sgd_step = stress.step_target(
    **_common, optimizer=lambda params: torch.optim.SGD(params, lr=0.1), name="optimizers.sgd_step"
)(plain_step)

_EPS_UNDERFLOW = (
    "Adam's state is kept in the parameters' float16: its eps=1e-8 rounds to 0, and the second "
    "moment 1e-3·g² underflows to 0 for gradients below ~8e-3, so the update m / (sqrt(v) + eps) "
    "is m/0 = inf, or 0/0 = NaN"
)

adam_step = stress.step_target(
    **_common,
    optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
    expect={"fp16": "finite_state"},
    reason=_EPS_UNDERFLOW,
    name="optimizers.adam_step",
)(plain_step)

adamw_step = stress.step_target(
    **_common,
    optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2),
    expect={"fp16": "finite_state"},
    reason=_EPS_UNDERFLOW,
    name="optimizers.adamw_step",
)(plain_step)
