"""The public surface: one declaration per option, accepted everywhere; light imports; clear errors."""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import MISSING, fields
from typing import Any

import pytest
import torch

import stress
from stress import FunctionOptions, RunOptions, StepOptions, st
from stress.integrations.cli import _parser
from stress.integrations.pytest_plugin import MARKER_KEYWORDS

# a valid value for every option, to pass to every entry point
SAMPLE: dict[str, Any] = {
    "name": "sampled",
    "expect": {"fp16": "error"},
    "reason": "a sample",
    "modes": ("fp32", "fp16"),
    "dims": {"B": (1, 2)},
    "tolerances": {"fp32": 1e-3},
    "max_grad_norm": 10.0,
    "max_examples": 2,
    "deadline": 30.0,
    "strict": False,
    "wrt": ("x",),
    "gradient_tolerances": {"fp32": 1e-2},
    "error_floor": 1.0,
    "max_output": 1e6,
    "gradient_error": True,
    "backward_error": False,
    "reference": lambda x: torch.tanh(x).sum(),
    "reference_dtype": torch.float64,
    "faults": ("none",),
    "warmup_steps": 1,
    "max_steps": 1,
    "step_equivalence": True,
}


def names(cls: type) -> set[str]:
    return {f.name for f in fields(cls) if f.init}


def test_the_sample_covers_every_option() -> None:
    assert names(FunctionOptions) | names(StepOptions) <= set(SAMPLE)


def test_fuzz_has_a_written_signature_with_every_option() -> None:
    params = inspect.signature(stress.fuzz).parameters
    run_only = names(RunOptions) - {
        "scheduler",
        "memory_budget",
        "device",
        "profile",
        "seed",
        "jobs",
        "modes",
    }
    assert (
        names(FunctionOptions) - {"modes", "max_examples", "deadline", "strict"}
    ) | run_only <= set(params)
    assert params["modes"].kind is inspect.Parameter.KEYWORD_ONLY
    doc = stress.fuzz.__doc__ or ""
    assert all(f"``{n}``" in doc for n in names(FunctionOptions) | names(RunOptions))


def fn(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x).sum()


def test_target_and_fuzz_accept_every_function_option() -> None:
    options = {k: SAMPLE[k] for k in names(FunctionOptions)}
    target = stress.target(fn, x=st.tensors(("B",)), **options)
    assert target.options == FunctionOptions(**options)
    fuzz_options = {k: v for k, v in options.items() if k not in ("modes",)}
    report = stress.fuzz(fn, x=st.tensors(("B",)), modes=("fp32",), jobs=0, **fuzz_options)
    assert set(report.results[0].options) == names(FunctionOptions) - {
        "name",
        "reason",
    }  # the report keeps them


def test_step_targets_accept_every_step_option() -> None:
    options = {k: SAMPLE[k] for k in names(StepOptions)}
    options["expect"] = {"fp16": "finite_state"}

    def make_step(
        model: torch.nn.Module, optimizer: torch.optim.Optimizer, mode: stress.Mode
    ) -> Any:
        def step(batch: dict[str, torch.Tensor], loss_fn: Any) -> None:
            loss_fn(model, batch).backward()
            optimizer.step()
            optimizer.zero_grad()

        return step

    common: dict[str, Any] = dict(
        model=lambda: torch.nn.Linear(2, 1),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        loss=lambda m, b: m(b["x"]).float().pow(2).mean(),
        batch={"x": st.activations(("B", 2), min_value=-1, max_value=1)},
    )
    target = stress.step_target(**common, **options)(make_step)
    assert target.options == StepOptions(**options)
    report = stress.fuzz_step(
        make_step,
        **common,
        jobs=0,
        **{k: v for k, v in options.items() if k != "modes"},
        modes=("fp32",),
    )
    assert report.results[0].checks


def test_the_cli_and_the_marker_accept_every_option_they_should() -> None:
    flags = {
        flag
        for action in _parser()._subparsers._group_actions[0].choices["fuzz"]._actions  # type: ignore[union-attr,index]
        for flag in action.option_strings
    }
    for cls in (FunctionOptions, RunOptions):
        for f in fields(cls):
            cli = f.metadata.get("cli")
            if cli:
                assert cli in flags, cli
    assert names(FunctionOptions) | names(RunOptions) <= MARKER_KEYWORDS


def test_every_option_is_documented() -> None:
    for cls in (FunctionOptions, StepOptions, RunOptions):
        for f in fields(cls):
            if f.init:
                assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no documentation"
                assert f.default is not MISSING or f.default_factory is not MISSING


def test_importing_the_guard_is_light() -> None:
    code = (
        "import sys\n"
        "import stress\n"
        "from stress import GuardedStep\n"
        "heavy = [m for m in ('pandas', 'matplotlib', 'hypothesis', 'jinja2') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_public_surface_is_the_package() -> None:
    assert set(stress.__all__) <= set(dir(stress))
    for name in stress.__all__:
        assert getattr(stress, name) is not None


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (
            lambda: stress.fuzz(fn, x=st.tensors((2,)), modes=("fp64",)),
            "unknown mode 'fp64'; accepted modes are fp32",
        ),
        (lambda: stress.fuzz(fn, x=st.tensors((2,)), deadline=0), "deadline=0"),
        (lambda: stress.fuzz(fn, x=st.tensors((2,)), jobs=-1), "jobs=-1"),
        (lambda: stress.fuzz(fn, x=st.tensors((2,)), reference_dtype="int8"), "reference_dtype"),
        (
            lambda: stress.fuzz(fn, x=st.tensors((2,)), expect={"fp16": "errorr"}),
            "expect['fp16']='errorr'",
        ),
        (
            lambda: stress.fuzz(fn, x=st.tensors((2,)), expect="error"),
            "expect='error' needs reason=",
        ),
        (
            lambda: stress.fuzz(fn, x=st.tensors((2,)), reference_dtype=torch.float32),
            "reference_dtype=torch.float32 without reference=",
        ),
        (
            lambda: stress.target(fn, x=st.tensors((2,)), gradient_tolerances={"fp16": -1}),
            "gradient_tolerances['fp16']=-1",
        ),
        (lambda: stress.Expect.may_fail("error", rate=2.0), "rate=2.0"),
        (lambda: stress.Expect.may_fail("error", rate=0), "a failure that is never found"),
        (
            lambda: stress.target(fn, x=st.tensors((2,)), expect={"tpu:fp16": "error"}, reason="r"),
            "'tpu:fp16'",
        ),
    ],
)
def test_bad_options_are_named_with_what_is_accepted(call: Any, needle: str) -> None:
    with pytest.raises(stress.InvalidArgument) as e:
        call()
    assert needle in str(e.value)


def test_wrt_takes_one_name_or_a_modules_parameter() -> None:
    from stress.engine.evaluation import FunctionSession

    linear = torch.nn.Linear(4, 3)
    target = stress.target(linear, input=st.activations(("B", 4)), wrt="weight")
    assert target.options.wrt == ("weight",)  # one name, not its letters
    ev = FunctionSession(target, stress.Mode("fp32")).evaluate({"input": torch.ones(2, 4)})
    assert set(ev.grads) == {"grad['weight']"}
    with pytest.raises(
        stress.InvalidArgument, match=r"not arguments or parameters \['weight', 'bias'\]"
    ):
        stress.target(linear, input=st.activations(("B", 4)), wrt=("wieght",))


def test_fuzz_takes_every_run_option_it_documents() -> None:
    documented = {f.name for f in fields(RunOptions)}
    assert documented <= set(inspect.signature(stress.fuzz).parameters)
