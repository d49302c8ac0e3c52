"""Faults injected into training steps, and the Hypothesis strategy of fault schedules.

A *schedule* is the sequence of micro-batch steps an example runs after its clean warm-up,
each with at most one fault. Hypothesis shrinks schedules toward few steps and no faults, so a
finding reads like ``[none, loss_spike(1e+05)]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as hst
import torch
from hypothesis.strategies import SearchStrategy

from ..core.modes import Mode
from ..core.options import FAULT_NAMES
from ..core.validation import check_choices

__all__ = ["FAULTS", "MUST_SKIP", "Fault", "schedules"]

FAULTS: tuple[str, ...] = FAULT_NAMES
# none; nan_batch / inf_batch: a NaN or Inf in the inputs; loss_spike: the loss multiplied by
# 1e3 … 1e8; inf_grad: an infinite gradient in one parameter, through a hook;
# large_activations: inputs at a quarter of the dtype's max (overflow downstream); zero_grad:
# the loss multiplied by 0; batch_of_one: the batch cut to one sample
# faults after which a correct step leaves parameters and optimizer state bit-identical
MUST_SKIP = frozenset({"nan_batch", "inf_batch", "loss_spike", "inf_grad"})


@dataclass(frozen=True)
class Fault:
    kind: str
    magnitude: int = 0  # log10 of a spike's factor, or the index of the parameter hit

    def __repr__(self) -> str:
        if self.kind == "loss_spike":
            return f"loss_spike(1e{self.magnitude})"
        if self.kind == "inf_grad":
            return f"inf_grad(param={self.magnitude})"
        return self.kind

    @property
    def must_skip(self) -> bool:
        return self.kind in MUST_SKIP

    def batch(self, batch: Mapping[str, Any], mode: Mode) -> dict[str, Any]:
        """The batch as this fault leaves it."""
        out = dict(batch)
        for key, value in batch.items():
            if not isinstance(value, torch.Tensor):
                continue
            if self.kind == "batch_of_one" and value.dim() > 0:
                out[key] = value[:1]
            elif value.is_floating_point() and value.numel():
                if self.kind in ("nan_batch", "inf_batch"):
                    bad = value.clone()
                    bad.view(-1)[0] = float("nan") if self.kind == "nan_batch" else float("inf")
                    out[key] = bad
                elif self.kind == "large_activations":
                    out[key] = torch.full_like(value, torch.finfo(mode.compute_dtype).max / 4)
        return out

    def loss(self, loss: Any) -> Any:
        """The loss as this fault leaves it; a ``(sum, count)`` pair has its sum changed."""
        if isinstance(loss, (tuple, list)) and len(loss) == 2:
            return (self.loss(loss[0]), loss[1])
        if self.kind == "loss_spike":
            return loss * 10.0**self.magnitude
        if self.kind == "zero_grad":
            return loss * 0.0
        return loss

    @contextmanager
    def hooks(self, model: torch.nn.Module) -> Iterator[None]:
        """An infinite gradient in one parameter while the step runs."""
        if self.kind != "inf_grad":
            yield
            return
        params = [p for p in model.parameters() if p.requires_grad]
        handle = params[self.magnitude % len(params)].register_hook(lambda g: g * float("inf"))
        try:
            yield
        finally:
            handle.remove()


def _fault(kind: str) -> SearchStrategy[Fault]:
    if kind == "loss_spike":
        return hst.integers(3, 8).map(lambda m: Fault(kind, m))
    if kind == "inf_grad":
        return hst.integers(0, 7).map(lambda m: Fault(kind, m))
    return hst.just(Fault(kind))


def schedules(faults: Sequence[str], max_steps: int) -> SearchStrategy[list[Fault]]:
    """Lists of one to ``max_steps`` steps; each step clean or with one of ``faults``."""
    check_choices("faults", tuple(faults), FAULTS)
    kinds = ["none", *[f for f in faults if f != "none"]]
    return hst.lists(hst.one_of(*[_fault(k) for k in kinds]), min_size=1, max_size=max_steps)
