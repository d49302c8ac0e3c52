"""Verdicts a user can trust: no false passes, no false alarms on stable code, no missed errors.

Each class of wrong verdict of the first release has a test here; each of them failed on it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import find, settings

import stress
from stress import Mode, Outcome, Status, st
from stress.core.strategies import examples
from stress.engine.evaluation import FunctionSession

FP32 = ("fp32",)


def fails(report: stress.Report) -> list[stress.Finding]:
    return [f for f in report.findings if f.outcome == Outcome.FAIL]


def session(fn: Any, mode: str = "fp32", **strategies: Any) -> FunctionSession:
    return FunctionSession(stress.target(fn, **strategies), Mode(mode))


# ------------------------------------------------------------------------ false passes


@pytest.mark.parametrize(
    ("fn", "check", "needle"),
    [
        (lambda x: float("nan"), "finite_forward", "is not finite"),
        (lambda x: ((x * 1e30).sum() / 1e30).item(), "finite_forward", "is not finite"),
        (lambda x: None, "floating_output", "returned out: None"),
        (lambda x: x.argmax(), "floating_output", "int64 tensor"),
        (lambda x: x > 0, "floating_output", "bool tensor"),
    ],
    ids=["nan-float", "overflowing-item", "none", "int-tensor", "bool-tensor"],
)
def test_every_output_is_checked_python_floats_included(fn: Any, check: str, needle: str) -> None:
    report = stress.fuzz(
        fn,
        x=st.tensors(("B",), min_value=1e10, max_value=1e20),
        modes=FP32,
        max_examples=20,
        profile="ci",
    )
    assert not report.ok
    assert check in [f.check for f in fails(report)] and needle in str(report)


def cancel_in_float32(x: torch.Tensor) -> torch.Tensor:
    return (x.float() + 1e8) - 1e8  # exact in float64, x's digits lost in float32


@pytest.mark.parametrize(
    "cast",
    [
        lambda x: x.float(),
        lambda x: x.to(torch.float32),
        lambda x: x.type(torch.float32),
        lambda x: x.to("cpu", torch.float32),
        lambda x: x * torch.ones(x.shape, dtype=torch.float32),
        lambda x: x.sum(-1, keepdim=True, dtype=torch.float32).expand_as(x),
    ],
    ids=[
        "float()",
        "to(dtype)",
        "type(dtype)",
        "to(device, dtype)",
        "factory dtype=",
        "reduction dtype=",
    ],
)
def test_the_reference_stays_float64_whatever_the_code_asks_for(cast: Any) -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        return (cast(x) + 1e8) - 1e8

    obs = session(f, x=st.tensors((3,))).check_values({"x": torch.tensor([0.1, 0.2, 0.3])})
    assert obs.reference_note is None
    assert [v.check for v in obs.violations] == [
        "error"
    ]  # the float32 mode now differs from float64


def test_a_reference_that_still_ran_in_float32_says_so() -> None:
    def through_numpy(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.detach().numpy().astype(np.float32)) * x.detach().sum()

    unit = st.tensors((3,), min_value=-1, max_value=1)
    report = stress.fuzz(through_numpy, x=unit, modes=FP32, max_examples=10, profile="ci")
    (result,) = report.results
    assert result.status == Status.UNVERIFIED and "reference degraded" in (result.reason or "")
    assert report.ok  # unverified is shown, not failing, unless strict
    strict = stress.fuzz(
        through_numpy, x=unit, modes=FP32, max_examples=10, profile="ci", strict=True
    )
    assert not strict.ok


def test_a_target_that_cannot_run_in_float64_is_unverified_not_passed() -> None:
    def float32_only(x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float64:
            raise TypeError("this kernel has no float64 version")
        return x * 2

    report = stress.fuzz(
        float32_only,
        # no overflow of x * 2: only the missing reference is at issue
        x=st.tensors((3,), min_value=-10, max_value=10),
        modes=FP32,
        max_examples=10,
        profile="ci",
    )
    assert report.results[0].status == Status.UNVERIFIED and "no float64 reference" in str(
        report.results[0].reason
    )


# ------------------------------------------------------------- false alarms on stable code


def test_a_result_beyond_the_dtype_is_a_limit_and_the_search_goes_on_past_it() -> None:
    def exp_and_root(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.exp(), y.sqrt().sum()  # exp(x > 11.09) is beyond float16; sqrt'(0) is a real bug

    report = stress.fuzz(
        exp_and_root,
        x=st.tensors((2,), min_value=-20, max_value=20),
        y=st.tensors((2,), min_value=0, max_value=1),
        modes=("fp16",),
        max_examples=100,
        profile="ci",
    )
    limits = [f for f in report.findings if f.outcome == Outcome.LIMIT]
    assert limits and "Representability limit" in limits[0].message
    assert "finite_gradients" in [f.check for f in fails(report)]  # not hidden behind the limit


def test_limits_pass_unless_strict() -> None:
    def exp_only(x: torch.Tensor) -> torch.Tensor:
        return x.exp()

    kwargs: dict[str, Any] = dict(
        x=st.tensors((2,), min_value=-20, max_value=20),
        modes=("fp16",),
        max_examples=60,
        profile="ci",
    )
    report = stress.fuzz(exp_only, **kwargs)
    assert report.results[0].status == Status.LIMIT and report.ok and not fails(report)
    assert not stress.fuzz(exp_only, strict=True, **kwargs).ok


def _fp32(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _rounding_breaks_a_tie() -> float:
    """A float32 value x whose x·0.1·10 lands above x in float32 but exactly on it in float64."""
    return next(
        float(c)
        for c in torch.linspace(1, 2, 2001, dtype=torch.float32)
        if float(c * 0.1 * 10) != float(c) and float(c.double() * 0.1 * 10) == float(c)
    )


def test_a_max_tie_that_rounding_breaks_is_a_limit() -> None:
    def tied(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.maximum(x * 0.1 * 10, y).sum()  # a tie in float64: the gradient splits

    v = _rounding_breaks_a_tie()
    obs = session(tied, x=st.tensors((1,)), y=st.tensors((1,))).check_values(
        {"x": _fp32([v]), "y": _fp32([v])}
    )
    assert obs.violations and all(x.outcome == Outcome.LIMIT for x in obs.violations), (
        obs.violations
    )
    assert "Discontinuity" in obs.violations[0].message


def test_an_abs_kink_that_rounding_crosses_is_a_limit() -> None:
    def distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x * 0.1 * 10 - y).abs().sum()  # |0| in float64, |1 ulp| in float32

    v = _rounding_breaks_a_tie()
    obs = session(distance, x=st.tensors((1,)), y=st.tensors((1,))).check_values(
        {"x": _fp32([v]), "y": _fp32([v])}
    )
    assert obs.violations and all(x.outcome == Outcome.LIMIT for x in obs.violations), (
        obs.violations
    )


def test_subnormal_inputs_are_below_the_dtypes_resolution() -> None:
    def norm(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x)

    tiny = torch.tensor([1e-45, 1e-45], dtype=torch.float32)  # the smallest float32 subnormals
    obs = session(norm, x=st.tensors((2,))).check_values({"x": tiny})
    assert obs.violations and all(x.outcome == Outcome.LIMIT for x in obs.violations), (
        obs.violations
    )
    assert "Below resolution" in obs.violations[0].message


def test_stable_code_at_the_subnormal_anchor_raises_no_failure() -> None:
    report = stress.fuzz(
        lambda x: F.normalize(x, dim=-1, eps=1e-3).sum(-1),
        x=st.embeddings(("B", "D"), min_value=-1e4, max_value=1e4),
        modes=FP32,
        max_examples=100,
        profile="ci",
    )
    assert not fails(report), [str(f) for f in fails(report)]


# ------------------------------------------------------- missed errors a stable version avoids


def gram_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|x - y| through |x|² + |y|² - 2x·y: cancels for nearly equal rows (the mm-based cdist)."""
    d2 = (x * x).sum(-1) + (y * y).sum(-1) - 2 * (x * y).sum(-1)
    return d2.clamp_min(1e-12).sqrt()


@pytest.mark.parametrize(
    "relation", ["copy(x)", "near_copy(x", "scaled_copy(x", "permuted_rows(x)"]
)
def test_correlated_arguments_are_drawn_on_purpose(relation: str) -> None:
    """Each relation of a same-shaped argument to an earlier one is drawn by the example strategy
    itself (not left to chance), and shrinks to its simplest form."""
    args = {"x": st.embeddings(("B", "D")), "y": st.embeddings(("B", "D"))}
    found = find(
        examples(args, Mode("fp32")),
        lambda ex: relation in ex.describe()["y"],
        settings=settings(max_examples=500, database=None),
    )
    assert found.describe()["y"].startswith(relation)


def test_a_cancellation_between_nearly_equal_rows_is_found() -> None:
    report = stress.fuzz(
        gram_distance,
        x=st.embeddings(("B", "D")),
        y=st.embeddings(("B", "D")),
        modes=FP32,
        max_examples=200,
        profile="ci",
    )
    found = [f for f in fails(report) if f.check in ("error", "gradient_error")]
    assert found, str(report)


def two_pass_layer_norm(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / ((x - mean) ** 2).mean(-1, keepdim=True).add(1e-12).sqrt()


def shifted_layer_norm(x: torch.Tensor) -> torch.Tensor:
    shifted = x - x[..., :1]  # exact for close values: the statistics of small differences
    mean = shifted.mean(-1, keepdim=True)
    centred = shifted - mean
    return centred / (centred**2).mean(-1, keepdim=True).add(1e-12).sqrt()


def test_an_error_a_stable_formulation_avoids_is_not_excused_by_conditioning() -> None:
    x = torch.tensor([[1000.0, 1000.0001, 1000.0002, 999.9999]], dtype=torch.float32)
    naive = session(two_pass_layer_norm, x=st.activations(("B", "D"))).check_values(
        {"x": x}, explain=True
    )
    (v,) = [v for v in naive.violations if v.check == "error"]
    assert (
        v.outcome == Outcome.FAIL and "a one-eps input change moves the float64 result" in v.message
    )
    stable = session(shifted_layer_norm, x=st.activations(("B", "D"))).check_values({"x": x})
    assert not [v for v in stable.violations if v.check == "error"]
    # backward-error semantics, when asked for, excuse what a one-eps input change explains
    lenient = FunctionSession(
        stress.target(two_pass_layer_norm, x=st.activations(("B", "D")), backward_error=True),
        Mode("fp32"),
    )
    assert not [v for v in lenient.check_values({"x": x}).violations if v.check == "error"]


def test_several_failures_of_one_target_are_each_reported() -> None:
    def two_bugs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.exp().sum().log(), y.sqrt().sum()  # log-sum-exp overflow; sqrt'(0)

    kwargs: dict[str, Any] = dict(
        x=st.tensors((3,), min_value=-20, max_value=20),
        y=st.tensors((3,), min_value=0, max_value=1),
        modes=("fp16",),
        max_examples=100,
        profile="ci",
    )
    report = stress.fuzz(two_bugs, **kwargs)
    assert {"finite_forward", "finite_gradients"} <= {f.check for f in fails(report)}
    # an expected failure does not hide an unexpected one
    expected_one = stress.fuzz(
        two_bugs, expect={"fp16": "finite_forward"}, reason="log-sum-exp", **kwargs
    )
    assert expected_one.results[0].status == Status.FAILED and not expected_one.ok
    reason = str(expected_one.results[0].reason)
    assert reason.startswith("finite_gradients") and "failed where fail (finite_forward)" in reason


_CALLS = {"n": 0}


def nan_once(x: torch.Tensor) -> torch.Tensor:
    _CALLS["n"] += 1
    return x.sum() * (math.nan if _CALLS["n"] == 3 else 1.0)


def test_a_failure_that_does_not_reproduce_is_flaky_not_a_finding() -> None:
    _CALLS["n"] = 0
    report = stress.fuzz(
        nan_once,
        x=st.tensors((2,), min_value=-1, max_value=1),
        modes=FP32,
        max_examples=20,
        profile="ci",
        jobs=0,
    )
    (result,) = report.results
    assert result.status == Status.FLAKY and report.ok
    assert all(f.outcome == Outcome.FLAKY for f in report.findings)
    _CALLS["n"] = 0
    expected = stress.fuzz(
        nan_once,
        x=st.tensors((2,), min_value=-1, max_value=1),
        modes=FP32,
        max_examples=20,
        profile="ci",
        jobs=0,
        expect="fail",
        reason="planted",
    )
    assert expected.results[0].status == Status.XPASSED  # a flaky failure meets no expectation
