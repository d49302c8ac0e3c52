"""Training steps as users write them: the known-bad steps are found by the right check, their
fixed twins pass, and every expectation is proved on a concrete batch with plain torch."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import stress
from stress import InvalidArgument, Mode, st
from stress.core.modes import MODE_NAMES
from stress.steps.faults import Fault, schedules

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "suites"))
import training

EVERY = dict.fromkeys(MODE_NAMES)
# the checks that may find each known-bad step first, per mode (its expectation says the same)
BAD: dict[str, dict[str, set[str]]] = {
    "first_micro_batch_scaling": {key: {"step_equivalence"} for key in EVERY},
    "per_micro_batch_token_mean": {key: {"step_equivalence", "finite_state"} for key in EVERY},
    "step_on_nonfinite_loss": {key: {"finite_state"} for key in EVERY},
    "skip_that_advances_adam": {key: {"skip_is_noop"} for key in EVERY},
    "fixed_loss_scale": {"fp16": {"finite_state"}, "amp-fp16": {"finite_state"}},
    "adam_pure_fp16": {"fp16": {"step_equivalence", "finite_state"}},
}
FIXED = [
    "micro_batch_accumulation",
    "global_token_count",
    "grad_scaler",
    "guarded",
    "guarded_accumulation",
]


@pytest.mark.parametrize("mode", MODE_NAMES)
@pytest.mark.parametrize("name", sorted(BAD))
def test_known_bad_steps_are_found_by_the_right_check(
    suites_report: stress.Report, name: str, mode: str
) -> None:
    result = suites_report.result(f"training.{name}", mode)
    if mode in BAD[name]:
        assert result.status == "xfailed", result.reason
        assert BAD[name][mode] & set(result.checks_failed), result.checks_failed
    elif result.expected.kind == "may-fail":
        assert result.status in ("passed", "xfailed", "limit"), result.reason
        assert set(result.checks_failed) <= set(result.expected.checks or ()), result.checks_failed
    else:
        assert result.status in ("passed", "limit"), [
            str(f) for f in suites_report.findings_for(result.target, mode)
        ]


@pytest.mark.parametrize("mode", MODE_NAMES)
@pytest.mark.parametrize("name", FIXED)
def test_fixed_steps_pass_in_every_mode(suites_report: stress.Report, name: str, mode: str) -> None:
    result = suites_report.result(f"training.{name}", mode)
    assert result.status == "passed", [
        str(f) for f in suites_report.findings_for(result.target, mode)
    ]
    assert result.examples > 0


def test_the_seed_001_bug_shrinks_to_two_rows_and_names_the_update(
    suites_report: stress.Report,
) -> None:
    (finding,) = [
        f
        for f in suites_report.findings_for("training.first_micro_batch_scaling", "fp32")
        if f.check == "step_equivalence"
    ]
    assert finding.counterexample["schedule"] == "4 clean steps, then [none]"
    assert "B=2" in finding.counterexample["batch"]  # the smallest batch with two micro-batches
    assert (
        "after call 0 (none)" in finding.message
        and "differs from one float64 SGD step" in finding.message
    )
    assert "param[" in finding.message


def test_the_fault_schedule_shrinks_to_the_single_fault(suites_report: stress.Report) -> None:
    (finding,) = [
        f
        for f in suites_report.findings_for("training.step_on_nonfinite_loss", "fp32")
        if f.check == "finite_state"
    ]
    assert finding.counterexample["schedule"] == "4 clean steps, then [nan_batch]"
    assert "after call 4 (nan_batch)" in finding.message


# ------------------------------------------------------------ proofs on concrete batches


def float64_step(
    optimizer: Any, loss: Any, model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> torch.nn.Module:
    """One plain float64 step of the same optimizer on the whole batch, from ``model``'s state."""
    reference = copy.deepcopy(model).double()
    opt = optimizer(reference.parameters())
    value = loss(
        reference, {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    )
    if isinstance(value, tuple):
        value = value[0] / value[1]
    value.backward()
    opt.step()
    return reference


def run_step(
    make_step: Any,
    model_fn: Any,
    optimizer: Any,
    loss: Any,
    batch: dict[str, torch.Tensor],
    mode: str,
) -> tuple[Any, torch.nn.Module]:
    """The step as the suite declares it, on ``batch`` in ``mode``; and the model before it."""
    m = Mode(mode)
    torch.manual_seed(0)
    model = model_fn().to(m.storage_dtype)
    before = copy.deepcopy(model)
    opt = optimizer(model.parameters())
    step = make_step(model, opt, m)

    def loss_fn(mod: torch.nn.Module, b: dict[str, torch.Tensor]) -> Any:
        with m.autocast():
            return loss(mod, b)

    step(
        {k: v.to(m.storage_dtype) if v.is_floating_point() else v for k, v in batch.items()},
        loss_fn,
    )
    return model, before


def relative_update_error(
    model: torch.nn.Module, before: torch.nn.Module, reference: torch.nn.Module
) -> float:
    got = torch.cat(
        [
            (p.double() - q.double()).flatten().detach()
            for p, q in zip(model.parameters(), before.parameters(), strict=True)
        ]
    )
    want = torch.cat(
        [
            (r - q.double()).flatten().detach()
            for r, q in zip(reference.parameters(), before.parameters(), strict=True)
        ]
    )
    return float((got - want).norm() / want.norm())


ROWS = torch.tensor(
    [[0.5, -0.25, 0.75, 0.0, -1.0, 0.25, 0.5, -0.5], [-0.75, 0.5, 0.25, 1.0, 0.0, -0.5, 0.25, 0.75]]
)
LABELS = torch.tensor([1, 3])


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_proof_first_micro_batch_scaling(mode: str) -> None:
    batch = {"x": ROWS, "y": LABELS}  # two rows: two micro-batches of one row
    bad, before = run_step(
        training.first_micro_batch_scaling.make_step,
        training.mlp,
        training.sgd,
        training.classification,
        batch,
        mode,
    )
    reference = float64_step(training.sgd, training.classification, before, batch)
    assert relative_update_error(bad, before, reference) > 0.5  # the second row counts twice over
    fixed, before = run_step(
        training.micro_batch_accumulation.make_step,
        training.mlp,
        training.sgd,
        training.classification,
        batch,
        mode,
    )
    assert relative_update_error(fixed, before, reference) < Mode(mode).gradient_tolerance()


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_proof_per_micro_batch_token_mean(mode: str) -> None:
    x = torch.linspace(-1, 1, 2 * 3 * 8).reshape(2, 3, 8)
    batch = {
        "x": x,
        "y": torch.tensor([[0, 1, 2], [3, 0, 1]]),
        "mask": torch.tensor([[True, False, False], [True, True, True]]),
    }
    bad, before = run_step(
        training.per_micro_batch_token_mean.make_step,
        training.token_classifier,
        training.sgd,
        training.token_loss,
        batch,
        mode,
    )
    reference = float64_step(training.sgd, training.token_loss, before, batch)
    # one token against three: averaging the two micro-batch means gives the lone token 3x its weight
    assert relative_update_error(bad, before, reference) > 0.3
    fixed, before = run_step(
        training.global_token_count.make_step,
        training.token_classifier,
        training.sgd,
        training.token_loss,
        batch,
        mode,
    )
    assert relative_update_error(fixed, before, reference) < Mode(mode).gradient_tolerance()


@pytest.mark.parametrize("mode", ["fp16", "amp-fp16"])
def test_proof_fixed_loss_scale_overflows_float16(mode: str) -> None:
    batch = {"x": ROWS * 100, "y": LABELS}
    model, _ = run_step(
        training.fixed_loss_scale.make_step,
        training.mlp,
        training.slow_sgd,
        training.classification,
        batch,
        mode,
    )
    assert not all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_proof_adam_state_underflows_in_float16() -> None:
    batch = {"x": ROWS, "y": LABELS}
    model, before = run_step(
        training.step_on_nonfinite_loss.make_step,
        training.mlp,
        training.adam,
        training.classification,
        batch,
        "fp16",
    )
    reference = float64_step(training.adam, training.classification, before, batch)
    assert relative_update_error(model, before, reference) > 1.0  # lr·g/eps instead of lr·g/|g|


def test_proof_step_on_a_nan_batch_corrupts_the_weights() -> None:
    batch = Fault("nan_batch").batch({"x": ROWS.clone(), "y": LABELS}, Mode("fp32"))
    model, _ = run_step(
        training.step_on_nonfinite_loss.make_step,
        training.mlp,
        training.adam,
        training.classification,
        batch,
        "fp32",
    )
    assert not bool(torch.isfinite(model[0].weight).all())


# --------------------------------------------------------------------- other behaviour


def model() -> torch.nn.Linear:
    return torch.nn.Linear(3, 2)


def loss(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
    return m(b["x"]).float().pow(2).mean()


def plain(m: torch.nn.Module, opt: torch.optim.Optimizer, mode: Mode) -> Any:
    def step(batch: dict[str, torch.Tensor], loss_fn: Any) -> None:
        loss_fn(m, batch).backward()
        opt.step()
        opt.zero_grad()

    return step


def test_fuzz_step_finds_a_step_on_an_infinite_gradient_and_the_guard_fixes_it() -> None:
    kwargs: dict[str, Any] = dict(
        model=model,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        loss=loss,
        batch={"x": st.activations(("B", 3), min_value=-1, max_value=1)},
        faults=("inf_grad",),
        modes=("fp32",),
        profile="ci",
        warmup_steps=2,
    )
    bad = stress.fuzz_step(plain, **kwargs)
    assert not bad.ok and bad.findings[0].check == "finite_state"
    good = stress.fuzz_step(stress.guarded_step(warmup=2), **kwargs)
    assert good.ok, [str(f) for f in good.findings]


def test_accumulation_is_learned_from_the_step_and_checked_against_one_float64_step() -> None:
    """GuardedStep accumulating 3 micro-batches, one call each: no declaration needed."""

    def half_scaled(m: torch.nn.Module, opt: torch.optim.Optimizer, mode: Mode) -> Any:
        calls = [0]

        def step(batch: dict[str, torch.Tensor], loss_fn: Any) -> None:
            calls[0] += 1
            (loss_fn(m, batch) / (3 if calls[0] % 3 else 1)).backward()  # the last one unscaled
            if calls[0] % 3 == 0:
                opt.step()
                opt.zero_grad()

        return step

    kwargs: dict[str, Any] = dict(
        model=model,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        loss=loss,
        batch={"x": st.activations(("B", 3), min_value=-1, max_value=1)},
        faults=("none",),
        modes=("fp32",),
        profile="ci",
        warmup_steps=3,
    )
    bad = stress.fuzz_step(half_scaled, **kwargs)
    assert [f.check for f in bad.findings if f.outcome == "fail"] == ["step_equivalence"]
    assert "3 calls (micro-batches)" in bad.findings[0].message
    good = stress.fuzz_step(stress.guarded_step(accumulation_steps=3, warmup=2), **kwargs)
    assert good.ok, [str(f) for f in good.findings]


def test_a_clipping_step_that_clips_before_unscaling_breaks_the_bound() -> None:
    def clip_then_scale(m: torch.nn.Module, opt: torch.optim.Optimizer, mode: Mode) -> Any:
        def step(batch: dict[str, torch.Tensor], loss_fn: Any) -> None:
            loss_fn(m, batch).backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 0.1)
            for p in m.parameters():
                assert p.grad is not None
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
    total, count = Fault("loss_spike", 3).loss((torch.tensor(2.0), torch.tensor(4)))
    assert float(total) == 2e3 and int(count) == 4  # a token-weighted loss keeps its count
    m = model()
    with Fault("inf_grad", 1).hooks(m):
        m(torch.ones(1, 3)).sum().backward()
    assert m.bias.grad is not None and m.weight.grad is not None
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
                model=model, optimizer=torch.optim.SGD, loss=loss, batch={}, warmup_steps=-1
            ),
            "warmup_steps=-1",
        ),
        (
            lambda: stress.step_target(model=3, optimizer=torch.optim.SGD, loss=loss, batch={}),  # type: ignore[arg-type]
            "model=3",
        ),
        (
            lambda: stress.step_target(
                model=model, optimizer=torch.optim.SGD, loss=loss, batch={}, faults=("nan",)
            ),
            "'nan'",
        ),
    ],
)
def test_bad_step_target_arguments(call: Any, needle: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        call()
    assert needle in str(e.value)


def test_guarded_step_with_its_defaults_passes_the_default_faults() -> None:
    """The guard judges no spike during its ``warmup``: the harness's warm-up is at least that
    long, so a ready step factory with default options is not failed for its own design."""
    report = stress.fuzz_step(
        stress.guarded_step(),
        model=lambda: torch.nn.Linear(6, 3),
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-3),
        loss=loss_6,
        batch={"x": st.activations(("B", 6), min_value=-1, max_value=1)},
        modes=("fp32",),
        max_examples=15,
        seed=0,
    )
    assert report.ok, [str(f) for f in report.findings]
    assert stress.guarded_step().warmup == 20  # type: ignore[attr-defined]
    assert stress.guarded_step(warmup=4).warmup == 4  # type: ignore[attr-defined]


def loss_6(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
    return m(b["x"]).float().pow(2).mean()


def clips(m: torch.nn.Module, opt: torch.optim.Optimizer, mode: Mode) -> Any:
    def step(batch: dict[str, torch.Tensor], loss_fn: Any) -> None:
        loss_fn(m, batch).backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1e-3)
        opt.step()
        opt.zero_grad()

    return step


def test_an_undeclared_clip_is_named_and_guarded_step_declares_its_own() -> None:
    kwargs: dict[str, Any] = dict(
        model=model,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        loss=loss,
        batch={"x": st.activations(("B", 3), min_value=1, max_value=10)},
        faults=("none",),
        modes=("fp32",),
        profile="ci",
        warmup_steps=2,
    )
    report = stress.fuzz_step(clips, **kwargs)
    (finding,) = [f for f in report.findings if f.check == "step_equivalence"]
    assert "if the step clips gradients, declare max_grad_norm=" in finding.message
    assert stress.fuzz_step(clips, **kwargs, max_grad_norm=1e-3).ok
    # the ready factory says how it clips: the reference clips the same way
    guarded = stress.fuzz_step(stress.guarded_step(max_grad_norm=1e-3, warmup=2), **kwargs)
    assert guarded.ok, [str(f) for f in guarded.findings]


def fuzz_small_step(make_step: Any, **given: Any) -> stress.Report:
    """``fuzz_step`` of the small linear model with SGD in fp32, ``given`` replacing any part."""
    defaults: dict[str, Any] = dict(
        model=model,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        loss=loss,
        batch={"x": st.activations(("B", 3))},
        modes=("fp32",),
        profile="ci",
    )
    return stress.fuzz_step(make_step, **{**defaults, **given})


def test_a_loss_that_returns_no_tensor_is_named_as_such() -> None:
    report = fuzz_small_step(plain, loss=lambda m, b: 3)
    (finding,) = report.findings
    assert finding.check == "exception"
    assert "the loss returned 3 (int); a loss returns a scalar floating-point tensor" in (
        finding.message
    )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(model=torch.nn.Linear(3, 2)), "model=Linear(...): give a function that builds"),
        (
            dict(optimizer=torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=0.1)),
            "optimizer=SGD(...): give a function of the parameters",
        ),
        (dict(batch=st.activations(("B", 3))), "batch=activations(('B', 3)): must be a dict"),
        (dict(clip=1.0), "clip=1.0: not an option of a training-step target; its options are"),
        (dict(max_grad_nrom=1.0), "(did you mean max_grad_norm?)"),
    ],
)
def test_misused_fuzz_step_arguments_are_named(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        fuzz_small_step(plain, **kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_step_factory_that_returns_no_step_is_named() -> None:
    def forgot_return(m: torch.nn.Module, opt: torch.optim.Optimizer, mode: Mode) -> Any:
        def step(batch: dict[str, torch.Tensor], loss_fn: Any) -> None: ...

    report = fuzz_small_step(forgot_return)
    assert "forgot_return returned None; a step factory returns step(batch, loss_fn)" in (
        report.findings[0].message
    )


def test_a_model_without_parameters_is_named_as_the_users_error() -> None:
    report = fuzz_small_step(plain, model=torch.nn.ReLU)
    assert report.results[0].status == "failed", report.results[0].reason  # not "error"
    (finding,) = report.findings
    assert finding.check == "exception"
    assert "model() built a module with no trainable parameter" in finding.message
