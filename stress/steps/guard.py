"""``GuardedStep``: the optimizer step users put in their training loop.

A few lines change in a plain PyTorch loop::

    guard = stress.GuardedStep(model, optimizer, scaler=scaler, accumulation_steps=4, max_grad_norm=1.0)
    for batch in loader:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = criterion(model(batch.x), batch.y)
        guard.step(loss)        # backward, checks, clipping, optimizer.step() when a window closes
    guard.flush()               # a last, partial accumulation window

What it guarantees:

* a non-finite loss is skipped **before** ``backward()``;
* a loss spike is skipped before ``backward()``, judged against recent history: the loss is a
  spike when it exceeds the median of the last ``window`` accepted losses by more than
  ``spike_threshold`` robust standard deviations (1.4826 × MAD) and by ``min_spike_ratio`` × the
  median (so a loss must be at least 4× the median by default), once ``warmup`` losses have been
  seen;
* non-finite gradients are found **before** ``optimizer.step()``; with a ``GradScaler`` the
  scaler's own inf check skips the step and backs off the scale, and clipping happens after
  ``scaler.unscale_()``, never before;
* gradient accumulation: every micro-batch's gradient enters with weight 1/n, n being the
  number of micro-batches accepted in its window — the last partial window included, and a
  skipped micro-batch leaves no gradient behind;
* on any skip, parameters, gradients and every optimizer state tensor (Adam's moments and step
  count) stay bit-identical to what they were before the step;
* a permanent shift of the loss level (a new data phase, a new learning rate) is not skipped
  forever: after ``level_shift_after`` spikes in a row the new level is accepted, with a warning
  and ``counts["level_shift"]``;
* GradScaler health: the scale is recorded; a warning is logged when it falls below
  ``min_scale`` or has been cut ``max_scale_cuts`` times in a row. Recovery policy: with
  ``reset_collapsed_scale=True`` the scale is then reset to the scaler's initial scale (the
  scaler otherwise only regrows by ``growth_factor`` every ``growth_interval`` clean steps).

Counters by reason are in ``guard.counts`` and logged on the ``stress.guard`` logger;
``state_dict()``/``load_state_dict()`` carry the loss history across a resumed run.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ..core import validation as v
from ..core.numerics import total_norm
from ..errors import InvalidArgument

__all__ = ["GuardedStep", "StepOutcome", "all_finite"]

log = logging.getLogger("stress.guard")

NONFINITE_LOSS, SPIKE, NONFINITE_GRAD, SCALER_OVERFLOW = (
    "nonfinite_loss",
    "spike",
    "nonfinite_grad",
    "scaler_overflow",
)
SKIP_REASONS = (NONFINITE_LOSS, SPIKE, NONFINITE_GRAD, SCALER_OVERFLOW)


@dataclass(frozen=True)
class StepOutcome:
    """What one call to :meth:`GuardedStep.step` did."""

    loss: float
    # the micro-batch's gradient was kept; False on the call that closes a window dropped for its
    # gradients (every micro-batch of that window was dropped with it)
    accepted: bool
    stepped: bool  # optimizer.step() ran
    skipped: str | None = None  # the reason, when a micro-batch or a window was skipped
    grad_norm: float | None = None  # total norm before clipping, when measured at a closed window


def all_finite(
    grads: list[torch.Tensor], flags: dict[torch.device, tuple[torch.Tensor, torch.Tensor]]
) -> bool:
    """Whether every gradient is finite: one fused pass, the kernel GradScaler uses for its check.

    ``flags`` keeps the (found-inf, scale 1) tensors per device between calls: no allocation
    on the hot path.
    """
    bad = False
    for device in {g.device for g in grads}:
        if device not in flags:
            flags[device] = (torch.zeros(1, device=device), torch.ones(1, device=device))
        found, one = flags[device]
        found.zero_()
        torch._amp_foreach_non_finite_check_and_unscale_(
            [g for g in grads if g.device == device], found, one
        )
        bad = bad or bool(found.item())
    return not bad


class GuardedStep:
    """Wraps ``optimizer.step()`` (optionally a ``torch.amp.GradScaler`` and accumulation)."""

    _REFRESH = 16

    def __init__(
        self,
        model: torch.nn.Module | Iterable[torch.nn.Parameter],
        optimizer: torch.optim.Optimizer,
        *,
        scaler: torch.amp.GradScaler | None = None,
        accumulation_steps: int = 1,
        max_grad_norm: float | None = None,
        grad_norm_alarm: float | None = None,
        spike_threshold: float | None = 10.0,
        min_spike_ratio: float = 3.0,
        window: int = 200,
        warmup: int = 20,
        min_scale: float = 1.0,
        max_scale_cuts: int = 5,
        reset_collapsed_scale: bool = False,
        level_shift_after: int | None = 20,
    ) -> None:
        if isinstance(model, torch.optim.Optimizer) or not isinstance(
            model, (torch.nn.Module, Iterable)
        ):
            raise InvalidArgument(
                f"GuardedStep(model={v.short_repr(model)}): must be an nn.Module or an iterable of "
                "parameters (the optimizer comes second)"
            )
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise InvalidArgument(
                f"GuardedStep(optimizer={v.short_repr(optimizer)}): must be a torch.optim.Optimizer"
            )
        if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
            raise InvalidArgument(
                f"GuardedStep(scaler={scaler!r}): must be a torch.amp.GradScaler or None"
            )
        ctx = "GuardedStep"
        v.check_int("accumulation_steps", accumulation_steps, minimum=1, context=ctx)
        v.check_number("max_grad_norm", max_grad_norm, positive=True, allow_none=True, context=ctx)
        v.check_number(
            "grad_norm_alarm", grad_norm_alarm, positive=True, allow_none=True, context=ctx
        )
        v.check_number(
            "spike_threshold", spike_threshold, positive=True, allow_none=True, context=ctx
        )
        v.check_number(
            "min_spike_ratio", min_spike_ratio, positive=True, allow_zero=True, context=ctx
        )
        v.check_int("window", window, minimum=1, context=ctx)
        v.check_int("warmup", warmup, minimum=0, context=ctx)
        v.check_number("min_scale", min_scale, positive=True, allow_zero=True, context=ctx)
        v.check_int("max_scale_cuts", max_scale_cuts, minimum=1, context=ctx)
        v.check_bool("reset_collapsed_scale", reset_collapsed_scale, context=ctx)
        v.check_int("level_shift_after", level_shift_after, minimum=1, allow_none=True, context=ctx)
        params = model.parameters() if isinstance(model, torch.nn.Module) else model
        self.params = [p for p in params if p.requires_grad]
        optimized = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if self.params and not any(id(p) in optimized for p in self.params):
            raise InvalidArgument(
                "GuardedStep(model, optimizer): the optimizer holds none of the model's "
                f"{len(self.params)} trainable parameters — was it built for another model?"
            )
        self.optimizer, self.scaler = optimizer, scaler
        self.accumulation_steps = accumulation_steps
        self.max_grad_norm, self.grad_norm_alarm = max_grad_norm, grad_norm_alarm
        self.spike_threshold, self.min_spike_ratio, self.warmup = (
            spike_threshold,
            min_spike_ratio,
            warmup,
        )
        self.min_scale, self.max_scale_cuts, self.reset_collapsed_scale = (
            min_scale,
            max_scale_cuts,
            reset_collapsed_scale,
        )
        self.level_shift_after = level_shift_after
        self.spikes_in_a_row = 0
        self.history: deque[float] = deque(maxlen=window)
        self.counts: Counter[str] = Counter()
        self.last_loss: float | None = None
        self.last_grad_norm: float | None = None
        self.last_scale: float | None = (
            scaler.get_scale() if scaler is not None and scaler.is_enabled() else None
        )
        self.scale_cuts_in_a_row = 0
        self._in_window = 0  # micro-batches seen in the open window
        self._accepted = 0  # of which accepted
        self._limit: float | None = (
            None  # cached spike limit, and the accepted count it was computed at
        )
        self._limit_at = 0
        self._flags: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ the loop's API

    def step(self, loss: torch.Tensor) -> StepOutcome:
        """Backward one micro-batch's loss; close the window (optimizer step) every ``accumulation_steps``."""
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise InvalidArgument(
                f"GuardedStep.step(loss={v.short_repr(loss)}): must be a scalar tensor"
            )
        if not loss.requires_grad:
            raise InvalidArgument(
                "GuardedStep.step(loss): the loss does not require grad — it was computed "
                "without the model's parameters, detached, or under torch.no_grad()"
            )
        value = float(loss.detach())
        self.last_loss = value
        self.counts["micro_batches"] += 1
        self._in_window += 1
        reason = (
            NONFINITE_LOSS
            if not math.isfinite(value)
            else (SPIKE if self.is_spike(value) else None)
        )
        if reason == SPIKE:
            self.spikes_in_a_row += 1
            if (
                self.level_shift_after is not None
                and self.spikes_in_a_row >= self.level_shift_after
            ):
                reason = self._accept_level_shift(value)
        elif reason is None:
            self.spikes_in_a_row = 0
        if reason is None:
            reason = self._backward(loss)
        if reason is not None:
            self._skip(reason, f"loss={value:.4g}")
        else:
            self._accepted += 1
            self.counts["accepted"] += 1
            self.history.append(value)
        if self._in_window < self.accumulation_steps:
            return StepOutcome(value, reason is None, False, reason)
        closed = self.flush()
        # a window dropped for its gradients dropped this micro-batch's too
        return StepOutcome(
            value,
            reason is None and closed.stepped,
            closed.stepped,
            reason or closed.skipped,
            closed.grad_norm,
        )

    def flush(self) -> StepOutcome:
        """Close the open window now (the last, partial one of an epoch): step on what it holds."""
        accepted, self._in_window, self._accepted = self._accepted, 0, 0
        if accepted == 0:
            self.optimizer.zero_grad(set_to_none=True)
            return StepOutcome(self._loss(), False, False, None)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.params if p.grad is not None]
        if accepted != self.accumulation_steps and grads:
            # each loss was divided by accumulation_steps; the window held `accepted` of them
            torch._foreach_mul_(grads, self.accumulation_steps / accepted)
        # the norm is needed for clipping and the alarm; otherwise a cheaper finiteness check
        # runs every step and the norm is refreshed every _REFRESH steps
        needs_norm = self.max_grad_norm is not None or self.grad_norm_alarm is not None
        norm: float | None = None
        if (
            needs_norm
            or self.counts["steps"] % self._REFRESH == 0
            or not all_finite(grads, self._flags)
        ):
            norm = self.last_grad_norm = total_norm(grads)
        if norm is not None and not math.isfinite(norm):
            reason = SCALER_OVERFLOW if self.scaler is not None else NONFINITE_GRAD
            if self.scaler is not None:
                self.scaler.step(self.optimizer)  # sees the inf and skips optimizer.step()
                self._update_scale()
            self._skip(reason, f"grad_norm={norm}")
            self.optimizer.zero_grad(set_to_none=True)
            return StepOutcome(self._loss(), False, False, reason, norm)
        if self.grad_norm_alarm is not None and norm is not None and norm > self.grad_norm_alarm:
            self.counts["grad_norm_alarm"] += 1
            log.warning(
                "gradient norm %.4g exceeds the alarm level %.4g", norm, self.grad_norm_alarm
            )
        if self.max_grad_norm is not None and norm is not None and norm > self.max_grad_norm:
            torch._foreach_mul_(grads, self.max_grad_norm / (norm + 1e-6))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self._update_scale()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.counts["steps"] += 1
        return StepOutcome(self._loss(), True, True, None, norm)

    def is_spike(self, value: float) -> bool:
        """Whether ``value`` is a spike against the accepted losses seen so far."""
        if self.spike_threshold is None or len(self.history) < max(self.warmup, 1):
            return False
        return value > self.spike_limit()

    def spike_limit(self) -> float:
        """median + max(threshold × 1.4826 × MAD, min_spike_ratio × |median|) of the history.

        Recomputed every ``_REFRESH`` accepted losses: the statistic moves slowly, and sorting
        the window on every step would cost more than the step of a small model.
        """
        n = self.counts["accepted"]
        if self._limit is None or n - self._limit_at >= self._REFRESH:
            median = statistics.median(self.history)
            mad = statistics.median(abs(v - median) for v in self.history)
            assert self.spike_threshold is not None
            margin = max(self.spike_threshold * 1.4826 * mad, self.min_spike_ratio * abs(median))
            self._limit, self._limit_at = median + margin, n
        return self._limit

    # ---------------------------------------------------------------------- internals

    def _loss(self) -> float:
        return self.last_loss if self.last_loss is not None else math.nan

    def _backward(self, loss: torch.Tensor) -> str | None:
        """Backward; in an accumulation window, drop this micro-batch's gradient if non-finite."""
        if self.accumulation_steps > 1:
            loss = loss / self.accumulation_steps
        isolate = self.accumulation_steps > 1 and self.scaler is None
        before = (
            [p.grad.clone() if p.grad is not None else None for p in self.params]
            if isolate and self._accepted
            else None
        )
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if not isolate:
            return None  # checked once, when the window closes
        grads = [p.grad for p in self.params if p.grad is not None]
        if math.isfinite(total_norm(grads)):
            return None
        for p, g in zip(self.params, before or [None] * len(self.params), strict=True):
            p.grad = g
        return NONFINITE_GRAD

    def _accept_level_shift(self, value: float) -> str | None:
        """So many spikes in a row are a new loss level (a new data phase, a new learning rate),
        not spikes: the history restarts from here and training goes on."""
        log.warning(
            "accepting a new loss level: %d losses in a row were above the spike limit %.4g (now %.4g); "
            "the loss history restarts",
            self.spikes_in_a_row,
            self.spike_limit(),
            value,
        )
        self.counts["level_shift"] += 1
        self.history.clear()
        self._limit, self.spikes_in_a_row = None, 0
        return None

    def _skip(self, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        log.warning("skipped (%s): %s; counts %s", reason, detail, dict(self.counts))

    def _update_scale(self) -> None:
        assert self.scaler is not None
        self.scaler.update()
        scale = self.scaler.get_scale()
        cut = self.last_scale is not None and scale < self.last_scale
        self.scale_cuts_in_a_row = self.scale_cuts_in_a_row + 1 if cut else 0
        self.last_scale = scale
        collapsed = self.scale_cuts_in_a_row >= self.max_scale_cuts
        if scale < self.min_scale or collapsed:
            self.counts["scale_alarm"] += 1
            log.warning(
                "GradScaler scale %.4g (cut %d times in a row; alarm below %.4g or after %d cuts)",
                scale,
                self.scale_cuts_in_a_row,
                self.min_scale,
                self.max_scale_cuts,
            )
            if self.reset_collapsed_scale:
                init = float(self.scaler._init_scale or 65536.0)
                self.scaler.update(new_scale=init)
                self.last_scale, self.scale_cuts_in_a_row = init, 0
                self.counts["scale_resets"] += 1
                log.warning("GradScaler scale reset to %.4g", init)

    # ------------------------------------------------------------------- checkpointing

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": list(self.history),
            "counts": dict(self.counts),
            "last_scale": self.last_scale,
            "scale_cuts_in_a_row": self.scale_cuts_in_a_row,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.history.clear()
            self.history.extend(float(v) for v in state["history"])
            self._limit = None
            self.counts = Counter(state["counts"])
            self.last_scale = state["last_scale"]
            self.scale_cuts_in_a_row = int(state["scale_cuts_in_a_row"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidArgument(
                f"GuardedStep.load_state_dict: not a GuardedStep state ({type(e).__name__}: {e})"
            ) from None

    def __repr__(self) -> str:
        return (
            f"GuardedStep(steps={self.counts['steps']}, skipped={ {r: self.counts[r] for r in SKIP_REASONS if self.counts[r]} }, "
            f"last_grad_norm={self.last_grad_norm}, last_scale={self.last_scale})"
        )
