"""Each guarantee of GuardedStep, shown with a planted fault."""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import pytest
import torch

from stress import GuardedStep, InvalidArgument


def mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def batch(seed: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)


def loss_of(model: torch.nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = b
    return ((model(x) - y) ** 2).mean()


def snapshot(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, object]:
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "opt": copy.deepcopy(opt.state_dict()),
    }


def assert_bit_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    for x, y in zip(a["params"], b["params"], strict=True):
        assert torch.equal(x, y)
    for x, y in zip(a["grads"], b["grads"], strict=True):
        assert (x is None and y is None) or torch.equal(x, y)
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for name in sa[k]:
            assert torch.equal(torch.as_tensor(sa[k][name]), torch.as_tensor(sb[k][name])), name


def linear(model: torch.nn.Sequential, index: int) -> torch.nn.Linear:
    layer = model[index]
    assert isinstance(layer, torch.nn.Linear)
    return layer


def trained(
    steps: int = 5, **guard_options: Any
) -> tuple[torch.nn.Sequential, torch.optim.Optimizer, GuardedStep]:
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    guard = GuardedStep(model, opt, **guard_options)
    for i in range(steps):
        assert guard.step(loss_of(model, batch(i))).stepped
    return model, opt, guard


def test_a_nonfinite_loss_is_skipped_before_backward() -> None:
    model, opt, guard = trained()
    calls = []
    linear(model, 0).weight.register_hook(lambda g: calls.append(1))
    before = snapshot(model, opt)
    out = guard.step(loss_of(model, batch(99)) * math.nan)
    assert out.skipped == "nonfinite_loss" and not out.stepped and calls == []
    assert_bit_identical(before, snapshot(model, opt))
    assert guard.counts["nonfinite_loss"] == 1


def test_nonfinite_gradients_are_caught_before_the_optimizer_step() -> None:
    model, opt, guard = trained()
    before = snapshot(model, opt)
    handle = linear(model, 2).bias.register_hook(lambda g: g * math.inf)
    out = guard.step(loss_of(model, batch(99)))
    handle.remove()
    assert (
        out.skipped == "nonfinite_grad"
        and not out.accepted  # its gradient was dropped, as in an accumulation window
        and not out.stepped
        and not math.isfinite(out.grad_norm or 0.0)
    )
    assert_bit_identical(before, snapshot(model, opt))  # Adam's moments and step count untouched
    assert guard.step(loss_of(model, batch(100))).stepped  # and training goes on


def test_spikes_are_judged_against_history_after_a_warmup() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the losses stay what we feed
    guard = GuardedStep(model, opt, warmup=10)

    def loss(scale: float) -> torch.Tensor:
        return loss_of(model, batch(0)) * scale

    assert guard.step(loss(1e3)).accepted  # no history yet: not judged
    guard.history.clear()
    for i in range(10):
        assert guard.step(loss(1 + 0.01 * i)).accepted
    before = snapshot(model, opt)
    out = guard.step(loss(1e3))
    assert out.skipped == "spike" and guard.counts["spike"] == 1
    assert_bit_identical(before, snapshot(model, opt))
    assert guard.step(loss(1.05)).accepted  # an ordinary loss is not a spike


def test_a_slowly_rising_loss_is_not_a_spike() -> None:
    model = mlp()
    guard = GuardedStep(model, torch.optim.SGD(model.parameters(), lr=0.0), warmup=5)
    assert all(guard.step(loss_of(model, batch(0)) * (1 + 0.02 * i)).accepted for i in range(60))


def sgd_after(
    micro_batches: list[tuple[torch.Tensor, torch.Tensor]], k: int, flush: bool = False
) -> torch.nn.Module:
    model = mlp()
    guard = GuardedStep(model, torch.optim.SGD(model.parameters(), lr=0.1), accumulation_steps=k)
    for b in micro_batches:
        guard.step(loss_of(model, b))
    if flush:
        guard.flush()
    return model


def concatenated(micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.nn.Module:
    x = torch.cat([b[0] for b in micro_batches])
    y = torch.cat([b[1] for b in micro_batches])
    return sgd_after([(x, y)], 1)


def assert_same_params(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_accumulation_equals_one_step_on_the_concatenated_batch() -> None:
    mbs = [batch(i) for i in range(4)]
    assert_same_params(sgd_after(mbs, 4), concatenated(mbs))


def test_the_last_partial_window_is_divided_by_its_own_size() -> None:
    mbs = [batch(i) for i in range(3)]
    assert_same_params(sgd_after(mbs, 4, flush=True), concatenated(mbs))


def test_a_skipped_micro_batch_leaves_no_gradient_behind() -> None:
    good = [batch(i) for i in range(3)]
    poisoned = (torch.full((8, 4), math.inf), torch.zeros(8, 1))  # finite loss? no: inf -> nan
    mbs = [good[0], poisoned, good[1], good[2]]
    assert_same_params(sgd_after(mbs, 4), concatenated(good))


def test_a_micro_batch_with_infinite_gradients_is_dropped_from_its_window() -> None:
    good = [batch(i) for i in range(3)]
    model = mlp()
    guard = GuardedStep(model, torch.optim.SGD(model.parameters(), lr=0.1), accumulation_steps=4)
    guard.step(loss_of(model, good[0]))
    handle = linear(model, 0).weight.register_hook(lambda g: g * math.inf)
    dropped = guard.step(loss_of(model, good[1]))
    assert dropped.skipped == "nonfinite_grad" and not dropped.accepted
    handle.remove()
    guard.step(loss_of(model, good[1]))
    guard.step(loss_of(model, good[2]))
    assert_same_params(model, concatenated(good))


def test_clipping_happens_after_unscaling_with_a_grad_scaler() -> None:
    model = mlp()
    reference = copy.deepcopy(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    guard = GuardedStep(
        model, torch.optim.SGD(model.parameters(), lr=1.0), scaler=scaler, max_grad_norm=0.01
    )
    b = batch(0)
    out = guard.step(loss_of(model, b))
    assert out.stepped
    # the true gradient, clipped to norm 0.01: what SGD(lr=1) must have subtracted
    grads = torch.autograd.grad(loss_of(reference, b), list(reference.parameters()))
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    assert out.grad_norm == pytest.approx(float(norm), rel=1e-5)  # measured unscaled
    applied = [
        (p0 - p1).detach()
        for p0, p1 in zip(reference.parameters(), model.parameters(), strict=True)
    ]
    applied_norm = torch.linalg.vector_norm(torch.stack([a.norm() for a in applied]))
    assert float(applied_norm) == pytest.approx(0.01, rel=1e-3)
    for a, g in zip(applied, grads, strict=True):
        torch.testing.assert_close(a, g * 0.01 / norm, rtol=1e-3, atol=1e-7)


def test_a_scaler_overflow_skips_the_step_and_backs_off_the_scale() -> None:
    model = mlp()
    opt = torch.optim.Adam(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    guard = GuardedStep(model, opt, scaler=scaler)
    assert guard.step(loss_of(model, batch(0))).stepped
    before = snapshot(model, opt)
    handle = linear(model, 0).bias.register_hook(lambda g: g * math.inf)
    out = guard.step(loss_of(model, batch(1)))
    handle.remove()
    assert out.skipped == "scaler_overflow" and guard.last_scale == 2.0**15
    assert_bit_identical(before, snapshot(model, opt))


def test_a_collapsing_scale_raises_an_alarm_and_can_be_reset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = mlp()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    guard = GuardedStep(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        scaler=scaler,
        max_scale_cuts=3,
        reset_collapsed_scale=True,
    )
    handle = linear(model, 0).bias.register_hook(lambda g: g * math.inf)
    with caplog.at_level(logging.WARNING, logger="stress.guard"):
        for i in range(3):
            guard.step(loss_of(model, batch(i)))
    handle.remove()
    assert guard.counts["scaler_overflow"] == 3 and guard.counts["scale_alarm"] == 1
    assert guard.counts["scale_resets"] == 1 and scaler.get_scale() == 2.0**10
    assert "cut 3 times in a row" in caplog.text


def test_state_dict_round_trip_keeps_the_history() -> None:
    _, _, guard = trained(steps=7)
    model = mlp()
    fresh = GuardedStep(model, torch.optim.SGD(model.parameters(), lr=0.1))
    fresh.load_state_dict(guard.state_dict())
    assert list(fresh.history) == list(guard.history) and fresh.counts["steps"] == 7
    with pytest.raises(InvalidArgument, match="not a GuardedStep state"):
        fresh.load_state_dict({"history": []})


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(accumulation_steps=0), "accumulation_steps=0"),
        (dict(max_grad_norm=-1.0), "max_grad_norm=-1.0"),
        (dict(warmup=-1), "warmup=-1"),
        (dict(scaler="yes"), "scaler='yes'"),
    ],
)
def test_bad_options_are_named(kwargs: dict[str, Any], needle: str) -> None:
    model = mlp()
    with pytest.raises(InvalidArgument) as e:
        GuardedStep(model, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)
    assert needle in str(e.value)


def test_misused_arguments_are_named_in_one_line() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(InvalidArgument, match=r"model=<SGD object>\): must be an nn.Module"):
        GuardedStep(opt, opt)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="holds none of the model's 4 trainable parameters"):
        GuardedStep(mlp(), opt)
    guard = GuardedStep(model, opt)
    with pytest.raises(InvalidArgument, match="does not require grad"):
        guard.step(torch.tensor(1.0))
    with pytest.raises(InvalidArgument) as e:
        guard.step(torch.ones(100, 100, requires_grad=True))
    assert str(e.value) == (
        "GuardedStep.step(loss=a torch.float32 tensor of shape (100, 100)): must be a scalar tensor"
    )


def test_a_float16_gradient_norm_beyond_65504_is_not_mistaken_for_an_overflow() -> None:
    model = torch.nn.Linear(4, 1).half()
    opt = torch.optim.SGD(model.parameters(), lr=1e-9)
    guard = GuardedStep(model, opt, max_grad_norm=1e9)  # the norm is measured, and must be finite
    x = torch.full((2, 4), 200.0, dtype=torch.float16)
    out = guard.step((model(x) * 100).sum())  # gradients of ~4e4 each: finite, norm ~1e5
    assert out.stepped and out.skipped is None
    assert guard.last_grad_norm is not None and 65504 < guard.last_grad_norm < math.inf


def test_a_permanent_shift_of_the_loss_level_is_accepted_after_enough_spikes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = mlp()
    guard = GuardedStep(
        model, torch.optim.SGD(model.parameters(), lr=1e-6), warmup=5, level_shift_after=4
    )
    for i in range(8):
        guard.step(loss_of(model, batch(i)))
    with caplog.at_level(logging.WARNING, logger="stress.guard"):
        outcomes = [guard.step(loss_of(model, batch(10 + i)) * 1000 + 1000) for i in range(10)]
    assert [o.skipped for o in outcomes[:3]] == ["spike"] * 3  # a spike is a spike at first
    assert outcomes[3].accepted and guard.counts["level_shift"] == 1  # then it is the new level
    assert all(o.accepted for o in outcomes[4:]) and "accepting a new loss level" in caplog.text


def test_a_gradient_norm_above_the_alarm_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = mlp()
    guard = GuardedStep(model, torch.optim.SGD(model.parameters(), lr=1e-6), grad_norm_alarm=1e-3)
    with caplog.at_level(logging.WARNING, logger="stress.guard"):
        out = guard.step(loss_of(model, batch(0)) * 100)
    assert out.stepped and guard.counts["grad_norm_alarm"] == 1  # warned, not skipped
    assert "exceeds the alarm level" in caplog.text


def test_a_scale_below_min_scale_raises_an_alarm(caplog: pytest.LogCaptureFixture) -> None:
    model = mlp()
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0, backoff_factor=0.5)
    guard = GuardedStep(
        model, torch.optim.SGD(model.parameters(), lr=0.1), scaler=scaler, min_scale=2.0
    )
    handle = linear(model, 0).bias.register_hook(lambda g: g * math.inf)
    with caplog.at_level(logging.WARNING, logger="stress.guard"):
        guard.step(loss_of(model, batch(0)))  # 4 -> 2: at the floor, no alarm
        assert guard.counts["scale_alarm"] == 0
        guard.step(loss_of(model, batch(1)))  # 2 -> 1: below min_scale
    handle.remove()
    assert guard.counts["scale_alarm"] == 1 and guard.last_scale == 1.0
    assert "alarm below 2" in caplog.text
