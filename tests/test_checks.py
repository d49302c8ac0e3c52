"""Each check catches a planted failure, passes a correct evaluation, and says whose fault it is."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as hst

from stress import Mode, Outcome
from stress.core.checks import (
    Evaluation,
    FiniteForward,
    FiniteGradients,
    Float64Agreement,
    FloatingOutput,
    GradientBound,
    OutputBound,
    measure,
)
from stress.core.numerics import max_abs, norm_of, normwise_error, summarize, total_norm

FP16 = Mode("fp16")
F64 = torch.float64


def ev(  # type: ignore[no-untyped-def]
    out: torch.Tensor,
    ref: torch.Tensor | None = None,
    grads: dict[str, torch.Tensor] | None = None,
    ref_grads: dict[str, torch.Tensor] | None = None,
    mode: Mode = FP16,
    probe=None,
) -> Evaluation:
    return Evaluation(
        mode,
        {"out": out},
        grads or {},
        {"out": ref} if ref is not None else None,
        ref_grads,
        probe=probe,
    )


def test_finite_forward_reports_count_index_and_value() -> None:
    out = torch.tensor([1.0, math.nan, 2.0, math.inf], dtype=torch.float16)
    (v,) = FiniteForward()(ev(out, torch.tensor([1.0, 0.0, 2.0, 3.0], dtype=F64)))
    assert v.check == "finite_forward" and v.outcome == Outcome.FAIL and v.key == "out"
    assert "2 of 4 elements (50%)" in v.message and "first at index (1,): nan" in v.message
    assert "the float64 value there is 0" in v.message
    assert FiniteForward()(ev(torch.ones(3, dtype=torch.float16))) == []


def test_a_value_beyond_the_dtype_is_a_limit_not_a_failure() -> None:
    (v,) = FiniteForward()(
        ev(torch.tensor([math.inf], dtype=torch.float16), torch.tensor([1e5], dtype=F64))
    )
    assert v.outcome == Outcome.LIMIT
    assert "Representability limit" in v.message and "float16's largest finite value" in v.message


def test_a_nonfinite_float64_is_the_formulas_fault() -> None:
    (v,) = FiniteForward()(ev(torch.tensor([math.nan]), torch.tensor([math.nan], dtype=F64)))
    assert v.outcome == Outcome.FAIL and "even in float64" in v.message


def test_finite_gradients_names_the_gradient() -> None:
    grads = {"grad['x']": torch.tensor([[0.0, math.inf]])}
    (v,) = FiniteGradients()(ev(torch.ones(1), grads=grads))
    assert (
        v.message.startswith("grad['x'] is not finite")
        and "(0, 1)" in v.message
        and v.key == "grad['x']"
    )
    assert FiniteGradients()(ev(torch.ones(1), grads={"grad['x']": torch.ones(2)})) == []


def test_no_floating_output_is_a_failure_that_says_what_came_back() -> None:
    e = Evaluation(FP16, {}, {}, no_float_output="out: None")
    (v,) = FloatingOutput()(e)
    assert (
        v.check == "floating_output"
        and "no floating-point output to check" in v.message
        and "None" in v.message
    )
    assert FloatingOutput()(ev(torch.ones(1))) == []


def test_bounds() -> None:
    assert OutputBound(10.0)(ev(torch.tensor([11.0])))
    assert OutputBound(10.0)(ev(torch.tensor([-9.0]))) == []
    big = {"grad['x']": torch.full((4,), 10.0), "grad['w']": torch.zeros(2)}
    (v,) = GradientBound(5.0)(ev(torch.ones(1), grads=big))
    assert "gradient norm 20" in v.message and "grad['x']" in v.message
    assert GradientBound(25.0)(ev(torch.ones(1), grads=big)) == []


def test_normwise_error_is_relative_above_the_floor_and_absolute_below() -> None:
    ref = torch.tensor([100.0, 1.0], dtype=F64)
    assert normwise_error(torch.tensor([101.0, 1.0]), ref, 1.0)[0] == 0.01
    tiny = torch.tensor([1e-6], dtype=F64)
    assert normwise_error(torch.tensor([0.0]), tiny, 1.0)[0] == 1e-6


def test_total_norm_of_float16_gradients_does_not_overflow() -> None:
    grads = [torch.full((4,), 60000.0, dtype=torch.float16)]
    assert math.isclose(total_norm(grads), 120000.0, rel_tol=1e-3)


def test_total_norm_of_float64_gradients_stays_in_float64() -> None:
    # float64 gradients (a reference model's) beyond float32's range, beside a float32 one
    grads = [torch.full((4,), 1e100, dtype=F64), torch.ones(2)]
    assert math.isclose(total_norm(grads), 2e100, rel_tol=1e-12)


def test_error_check_catches_a_planted_bias_and_passes_rounding() -> None:
    ref = torch.linspace(1, 2, 5, dtype=F64)
    check = Float64Agreement({}, 1.0)
    assert check(ev(ref.to(torch.float16), ref)) == []  # rounding to fp16 only: within tolerance
    (v,) = check(ev((ref * 1.05).to(torch.float16), ref))
    assert v.check == "error" and v.outcome == Outcome.FAIL
    assert "> tolerance 0.01 for fp16" in v.message and "5 of 5 elements" in v.message


def test_tolerances_override() -> None:
    ref = torch.linspace(1, 2, 5, dtype=F64)
    assert Float64Agreement({"fp16": 0.1}, 1.0)(ev((ref * 1.05).to(torch.float16), ref)) == []


def test_smooth_ill_conditioning_explains_an_error_but_does_not_excuse_it() -> None:
    ref = torch.linspace(1, 2, 5, dtype=F64)
    off = (ref * 1.05).to(torch.float16)

    def probe(scale: float, sign: int):  # type: ignore[no-untyped-def]
        # a smooth, ill-conditioned function: the change scales with the perturbation
        return {"out": ref * (1 + 0.2 * scale * sign)}, {}

    (v,) = Float64Agreement({}, 1.0)(ev(off, ref, probe=probe))
    assert v.outcome == Outcome.FAIL
    # unless the target asks for backward-error semantics
    assert Float64Agreement({}, 1.0, backward_error=True)(ev(off, ref, probe=probe)) == []


def test_a_discontinuity_makes_an_error_a_limit() -> None:
    ref = torch.tensor([1.0, -1.0], dtype=F64)
    flipped = torch.tensor([-1.0, -1.0], dtype=torch.float16)  # float16 landed on the other side

    def probe(scale: float, sign: int):  # type: ignore[no-untyped-def]
        # a jump: even a perturbation 1000 times smaller than one eps flips the sign
        return {"out": torch.tensor([-1.0 if sign > 0 else 1.0, -1.0], dtype=F64)}, {}

    (v,) = Float64Agreement({}, 1.0)(ev(flipped, ref, probe=probe))
    assert v.outcome == Outcome.LIMIT and "Discontinuity" in v.message


def test_an_output_beyond_the_dtype_is_a_limit_of_the_error_check_too() -> None:
    ref = torch.tensor([1e6], dtype=F64)
    (v,) = Float64Agreement({}, 1.0)(ev(torch.tensor([65504.0], dtype=torch.float16), ref))
    assert v.outcome == Outcome.LIMIT and "Representability" in v.message


def test_gradient_error_names_the_gradient_and_uses_the_gradient_tolerance() -> None:
    fp32 = Mode("fp32")
    g = {"grad['x']": torch.tensor([1.0, 2.0])}
    r = {"grad['x']": torch.tensor([1.0, 3.0], dtype=F64)}
    (v,) = Float64Agreement({}, 1.0, on_gradients=True)(
        ev(torch.ones(1), torch.ones(1, dtype=F64), g, r, mode=fp32)
    )
    assert (
        v.check == "gradient_error"
        and v.message.startswith("grad['x']")
        and "grad_error" in v.figures
    )
    # 5e-4 off: beyond float32's output tolerance (1e-4), within its gradient tolerance (1e-3)
    near = {"grad['x']": torch.tensor([1.0, 3.0 - 1.5e-3])}
    assert (
        Float64Agreement({}, 1.0, on_gradients=True)(
            ev(torch.ones(1), torch.ones(1, dtype=F64), near, r, mode=fp32)
        )
        == []
    )
    assert Float64Agreement({}, 1.0)(ev(near["grad['x']"], r["grad['x']"], mode=fp32))


def test_measure_reports_figures_and_an_infinite_error_for_nonfinite_outputs() -> None:
    figs = measure(
        ev(
            torch.tensor([3.0, -4.0]),
            torch.tensor([3.0, -4.0], dtype=F64),
            {"grad['x']": torch.tensor([3.0, 4.0])},
        ),
        1.0,
    )
    assert figs["max_abs_output"] == 4.0 and figs["grad_norm"] == 5.0 and figs["error"] == 0.0
    bad = measure(ev(torch.tensor([math.inf]), torch.tensor([2.0], dtype=F64)), 1.0)
    assert bad["error"] == math.inf


_SPECIAL = hst.sampled_from(
    [0.0, -0.0, 1e-40, 6e-8, 1.0, -3.5, 65504.0, 1e5, math.inf, -math.inf, math.nan]
)


@settings(max_examples=150, deadline=None)
@given(
    value=hst.lists(_SPECIAL | hst.floats(-1e6, 1e6), max_size=6),
    ref=hst.lists(_SPECIAL | hst.floats(-1e300, 1e300), max_size=6),
    dtype=hst.sampled_from([torch.float16, torch.bfloat16, torch.float32]),
    floor=hst.sampled_from([1e-30, 1e-6, 1.0]),  # error_floor is positive
)
def test_one_pass_summary_agrees_with_the_figures_computed_one_by_one(
    value: list[float], ref: list[float], dtype: torch.dtype, floor: float
) -> None:
    v = torch.tensor(value, dtype=dtype)
    r = torch.tensor(ref, dtype=F64)
    s = summarize({"v": v}, {"v": r})["v"]
    assert s.nonfinite == int((~torch.isfinite(v)).sum())
    torch.testing.assert_close(s.max_abs, max_abs(v), equal_nan=True)
    assert math.copysign(1.0, s.max_abs) > 0 or math.isnan(s.max_abs)  # never "-0"
    torch.testing.assert_close(s.norm, norm_of(v), equal_nan=True)
    assert s.compared == (len(value) == len(ref))
    expected = normwise_error(v, r, floor)[0]
    torch.testing.assert_close(s.error(floor), expected, equal_nan=True)
    lost = s.compared and bool((~torch.isfinite(v) & torch.isfinite(r)).any())
    assert s.lost == lost
    assert summarize({"v": v}, None)["v"].compared is False


def test_summary_of_several_tensors_is_each_one_summarized_alone() -> None:
    # finite ones take four passes, non-finite ones the masked path: the mix keeps its order
    values = {
        "loss": torch.tensor(2.0, dtype=torch.float16),
        "grad": torch.tensor([1.0, math.nan, 3.0], dtype=torch.float16),
        "empty": torch.zeros(0),
        "other": torch.tensor([[-4.0, 5.0]]),
    }
    refs = {"loss": torch.tensor(2.5, dtype=F64), "grad": torch.tensor([1.0, 2.0, math.inf])}
    together = summarize(values, refs)
    assert list(together) == list(values)
    for key, v in values.items():
        alone = summarize({key: v}, {key: refs[key]} if key in refs else None)[key]
        assert repr(together[key]) == repr(alone)  # (NaN figures compare by their repr)
    assert together["grad"].lost and together["grad"].nonfinite == 1
    assert together["other"].max_abs == 5.0 and not together["other"].compared
