"""Each check catches a planted failure and passes a correct evaluation."""

from __future__ import annotations

import math

import torch

from stress import Mode
from stress.checks import (
    Evaluation,
    FiniteForward,
    FiniteGradients,
    GradientBound,
    OutputBound,
    ReferenceError,
    measure,
    normwise_error,
)

FP16 = Mode("fp16")


def ev(out, ref=None, grads=None, ref_grads=None, mode=FP16, sensitivity=None):  # type: ignore[no-untyped-def]
    return Evaluation(
        mode,
        {"out": out},
        grads or {},
        {"out": ref} if ref is not None else None,
        ref_grads,
        sensitivity or {},
    )


def test_finite_forward_reports_count_index_and_value() -> None:
    out = torch.tensor([1.0, math.nan, 2.0, math.inf], dtype=torch.float16)
    v = FiniteForward()(ev(out, torch.tensor([1.0, 0.0, 2.0, 3.0], dtype=torch.float64)))
    assert v is not None and v.check == "finite_forward"
    assert "2 of 4 elements (50%)" in v.message and "first at index (1,): nan" in v.message
    assert "the float64 value there is 0" in v.message
    assert FiniteForward()(ev(torch.ones(3, dtype=torch.float16))) is None


def test_finite_forward_names_a_representability_limit() -> None:
    v = FiniteForward()(
        ev(torch.tensor([math.inf], dtype=torch.float16), torch.tensor([1e5], dtype=torch.float64))
    )
    assert (
        v is not None
        and "Representability limit" in v.message
        and "65504" in v.message.replace(",", "").replace("6.55e+04", "65504")
    )


def test_finite_forward_says_when_float64_breaks_too() -> None:
    v = FiniteForward()(ev(torch.tensor([math.nan]), torch.tensor([math.nan], dtype=torch.float64)))
    assert v is not None and "even in float64" in v.message


def test_finite_gradients_names_the_gradient() -> None:
    grads = {"grad['x']": torch.tensor([[0.0, math.inf]])}
    v = FiniteGradients()(ev(torch.ones(1), grads=grads))
    assert (
        v is not None and v.message.startswith("grad['x'] is not finite") and "(0, 1)" in v.message
    )
    assert FiniteGradients()(ev(torch.ones(1), grads={"grad['x']": torch.ones(2)})) is None


def test_bounds() -> None:
    assert OutputBound(10.0)(ev(torch.tensor([11.0]))) is not None
    assert OutputBound(10.0)(ev(torch.tensor([-9.0]))) is None
    big = {"grad['x']": torch.full((4,), 10.0), "grad['w']": torch.zeros(2)}
    v = GradientBound(5.0)(ev(torch.ones(1), grads=big))
    assert v is not None and "gradient norm 20" in v.message and "grad['x']" in v.message
    assert GradientBound(25.0)(ev(torch.ones(1), grads=big)) is None


def test_normwise_error_is_relative_above_the_floor_and_absolute_below() -> None:
    ref = torch.tensor([100.0, 1.0], dtype=torch.float64)
    assert normwise_error(torch.tensor([101.0, 1.0]), ref, 1.0)[0] == 0.01
    tiny = torch.tensor([1e-6], dtype=torch.float64)
    assert normwise_error(torch.tensor([0.0]), tiny, 1.0)[0] == 1e-6


def test_reference_error_catches_a_planted_bias_and_passes_rounding() -> None:
    ref = torch.linspace(1, 2, 5, dtype=torch.float64)
    check = ReferenceError()
    assert check(ev(ref.to(torch.float16), ref)) is None  # rounding to fp16 only: within tolerance
    v = check(ev((ref * 1.05).to(torch.float16), ref))
    assert v is not None and v.check == "error"
    assert "> tolerance 0.01 for fp16" in v.message and "5 of 5 elements" in v.message


def test_reference_error_tolerances_override() -> None:
    ref = torch.linspace(1, 2, 5, dtype=torch.float64)
    assert ReferenceError({"fp16": 0.1})(ev((ref * 1.05).to(torch.float16), ref)) is None


def test_reference_error_allows_what_input_rounding_explains() -> None:
    ref = torch.linspace(1, 2, 5, dtype=torch.float64)
    planted = ev((ref * 1.05).to(torch.float16), ref, sensitivity={"out": 0.01})
    assert ReferenceError()(planted) is None  # 0.1 error allowed by 10x a 0.01 sensitivity
    planted.sensitivity["out"] = 0.001
    assert ReferenceError()(planted) is not None


def test_gradient_error_names_the_gradient() -> None:
    g = {"grad['x']": torch.tensor([1.0, 2.0])}
    r = {"grad['x']": torch.tensor([1.0, 3.0], dtype=torch.float64)}
    v = ReferenceError(on_gradients=True)(
        ev(torch.ones(1), torch.ones(1, dtype=torch.float64), g, r)
    )
    assert v is not None and v.check == "gradient_error" and v.message.startswith("grad['x']")


def test_measure_reports_figures() -> None:
    figs = measure(
        ev(
            torch.tensor([3.0, -4.0]),
            torch.tensor([3.0, -4.0], dtype=torch.float64),
            {"grad['x']": torch.tensor([3.0, 4.0])},
        )
    )
    assert figs["max_abs_output"] == 4.0 and figs["grad_norm"] == 5.0 and figs["error"] == 0.0


def test_gradients_get_a_looser_tolerance_than_outputs() -> None:
    ref = torch.linspace(1, 2, 5, dtype=torch.float64)
    off = (ref * 1.05).to(torch.float16)
    assert ReferenceError()(ev(off, ref)) is not None
    grads = ev(
        torch.ones(1), torch.ones(1, dtype=torch.float64), {"grad['x']": off}, {"grad['x']": ref}
    )
    assert ReferenceError(on_gradients=True)(grads) is None
