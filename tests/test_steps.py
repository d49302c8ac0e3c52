"""Training steps under injected faults: the known-bad steps are found, the guarded ones pass."""

from __future__ import annotations

import math

import pytest
import torch

import stress
from stress import InvalidArgument, Mode, st
from stress.steps.faults import Fault, schedules
from stress.core.modes import MODE_NAMES

BAD = {
    "first_micro_batch_scaling": dict.fromkeys(MODE_NAMES, "accumulation"),
    "step_on_nonfinite_loss": dict.fromkeys(MODE_NAMES, "finite_state"),
    "skip_that_advances_adam": dict.fromkeys(MODE_NAMES, "skip_is_noop"),
    "fixed_loss_scale": {"fp16": "finite_state", "amp-fp16": "finite_state"},
    "adam_pure_fp16": {"fp16": "finite_state"},
}


@pytest.fixture
def training_report(suites_report: stress.Report) -> stress.Report:
    return suites_report


@pytest.mark.parametrize("mode", MODE_NAMES)
@pytest.mark.parametrize("name", sorted(BAD))
def test_known_bad_steps_are_found_by_the_right_invariant(
    training_report: stress.Report, name: str, mode: str
) -> None:
    result = training_report.result(f"training.{name}", mode)
    if mode in BAD[name]:
        assert result.status == "xfailed"
        assert BAD[name][mode] in result.checks_failed
    else:
        assert result.status == "passed", [
            str(f) for f in training_report.findings_for(result.target, mode)
        ]


@pytest.mark.parametrize("mode", MODE_NAMES)
@pytest.mark.parametrize("name", ["guarded", "guarded_accumulation"])
def test_guarded_steps_pass_in_every_mode(
    training_report: stress.Report, name: str, mode: str
) -> None:
    result = training_report.result(f"training.{name}", mode)
    assert result.status == "passed", [
        str(f) for f in training_report.findings_for(result.target, mode)
    ]
    assert result.examples > 0


def test_the_fault_schedule_shrinks_to_the_single_fault(training_report: stress.Report) -> None:
    (finding,) = training_report.findings_for("training.step_on_nonfinite_loss", "fp32")
    assert finding.counterexample["schedule"] == "6 clean steps, then [nan_batch]"
    assert "after step 6 (nan_batch)" in finding.message


def model() -> torch.nn.Module:
    return torch.nn.Linear(3, 2)


def loss(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
    return m(b["x"]).float().pow(2).mean()


def plain(m, opt, mode):  # type: ignore[no-untyped-def]
    def step(batch, loss_fn):  # type: ignore[no-untyped-def]
        loss_fn(m, batch).backward()
        opt.step()
        opt.zero_grad()

    return step


def test_fuzz_step_finds_a_step_on_an_infinite_gradient_and_the_guard_fixes_it() -> None:
    kwargs = dict(
        model=model,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        loss=loss,
        batch={"x": st.activations(("B", 3), min_value=-1, max_value=1)},
        faults=("inf_grad",),
        modes=("fp32",),
        profile="ci",
        warmup_steps=2,
    )
    bad = stress.fuzz_step(plain, **kwargs)  # type: ignore[arg-type]
    assert not bad.ok and bad.findings[0].check == "finite_state"
    good = stress.fuzz_step(stress.guarded_step(warmup=2), **kwargs)  # type: ignore[arg-type]
    assert good.ok, [str(f) for f in good.findings]


def test_a_clipping_step_that_clips_before_unscaling_breaks_the_bound() -> None:
    def clip_then_scale(m, opt, mode):  # type: ignore[no-untyped-def]
        def step(batch, loss_fn):  # type: ignore[no-untyped-def]
            loss_fn(m, batch).backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 0.1)
            for p in m.parameters():
                p.grad *= 100.0  # as if unscaling came after clipping
            opt.step()
            opt.zero_grad()

        return step

    report = stress.fuzz_step(
        clip_then_scale,
        model=model,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.01),
        loss=loss,
        batch={"x": st.activations(("B", 3), min_value=-1, max_value=1)},
        faults=("none",),
        max_grad_norm=0.1,
        modes=("fp32",),
        profile="ci",
        warmup_steps=0,
    )
    assert report.findings[0].check == "clip_bound"


def test_faults_change_batches_losses_and_gradients() -> None:
    fp16 = Mode("fp16")
    batch = {"x": torch.ones(4, 3, dtype=torch.float16), "y": torch.zeros(4, dtype=torch.int64)}
    assert math.isnan(float(Fault("nan_batch").batch(batch, fp16)["x"][0, 0]))
    assert math.isinf(float(Fault("inf_batch").batch(batch, fp16)["x"][0, 0]))
    assert Fault("batch_of_one").batch(batch, fp16)["y"].shape == (1,)
    assert float(Fault("large_activations").batch(batch, fp16)["x"].max()) == 65504 / 4
    assert float(Fault("loss_spike", 5).loss(torch.tensor(2.0))) == 2e5
    assert float(Fault("zero_grad").loss(torch.tensor(2.0))) == 0.0
    m = model()
    with Fault("inf_grad", 1).hooks(m):
        m(torch.ones(1, 3)).sum().backward()
    assert torch.isinf(m.bias.grad).all() and torch.isfinite(m.weight.grad).all()
    m.zero_grad()
    m(torch.ones(1, 3)).sum().backward()
    assert torch.isfinite(m.bias.grad).all()  # the hook is gone after the step
    assert repr(Fault("loss_spike", 5)) == "loss_spike(1e5)"


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: schedules(("bitflip",), 3), "'bitflip'"),
        (
            lambda: stress.step_target(
                model=model, optimizer=torch.optim.SGD, loss=loss, batch={}, accumulation_steps=0
            ),
            "accumulation_steps=0",
        ),
        (
            lambda: stress.step_target(model=3, optimizer=torch.optim.SGD, loss=loss, batch={}),
            "model=3",
        ),
    ],
)
def test_bad_step_target_arguments(call, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as e:
        call()
    assert needle in str(e.value)
