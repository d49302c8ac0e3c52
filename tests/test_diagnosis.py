"""Every finding says where the first NaN/Inf or large error appeared, and why."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import stress
from stress import st
from stress.analysis.diagnosis import MECHANISMS, diagnose
from stress.core.modes import Mode
from stress.engine import jobs

SUITES = Path(__file__).resolve().parents[1] / "suites"


def line_of(file: str, text: str, after: str = "") -> int:
    """The line of ``text`` in a suite file (after the line holding ``after``), so edits don't break tests."""
    lines = (SUITES / file).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines[start:], start) if text in line) + 1


def line_here(fn: Any, text: str) -> int:
    source, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(source) if text in line)


def diagnosis_of(report: stress.Report, check: str) -> dict[str, Any]:
    finding = next(f for f in report.findings if f.check == check and f.outcome == "fail")
    assert finding.diagnosis is not None, str(finding)
    return finding.diagnosis


# target, mode, check -> op, phase, file, text on the user's line, (function it is in), mechanism
EXPECTED = [
    (
        "seeds.info_nce_naive",
        "fp16",
        "finite_forward",
        "aten::exp",
        "forward",
        "seeds.py",
        "logits.exp()",
        "def info_nce_naive",
        "exp overflow",
    ),
    (
        "seeds.info_nce_naive",
        "bf16",
        "finite_forward",
        "aten::exp",
        "forward",
        "seeds.py",
        "logits.exp()",
        "def info_nce_naive",
        "exp overflow",
    ),
    (
        "training.fixed_loss_scale",
        "fp16",
        "finite_state",
        "aten::_to_copy",  # the 65536-scaled float32 loss gradient cast back to float16 logits
        "backward",
        "training.py",
        'model(batch["x"]).float()',
        "def classification",
        "cast overflow",
    ),
    (
        "training.step_on_nonfinite_loss",
        "fp32",
        "finite_state",
        "aten::addmm",
        "forward",
        "training.py",
        'model(batch["x"])',
        "def classification",
        "non-finite input",
    ),
]


@pytest.mark.parametrize(
    ("target", "mode", "check", "op", "phase", "file", "text", "after", "mechanism"),
    EXPECTED,
    ids=str,
)
def test_known_bad_targets_name_op_line_and_mechanism(
    suites_report: stress.Report,
    target: str,
    mode: str,
    check: str,
    op: str,
    phase: str,
    file: str,
    text: str,
    after: str,
    mechanism: str,
) -> None:
    (finding,) = [
        f
        for f in suites_report.findings_for(target, mode)
        if f.check == check and f.outcome == "fail"
    ]
    d = finding.diagnosis
    assert d is not None, str(finding)
    assert (d["op"], d["phase"], d["mechanism"]) == (op, phase, mechanism), d
    assert d["location"].startswith(f"{file}:{line_of(file, text, after)} in "), d["location"]
    assert "diagnosis: first " in str(finding)


def test_logic_invariants_get_no_numeric_diagnosis(suites_report: stress.Report) -> None:
    findings = suites_report.findings_for("training.first_micro_batch_scaling", "fp32")
    assert findings and all(f.check == "step_equivalence" and f.diagnosis is None for f in findings)


def erfinv_at_one(x: torch.Tensor) -> torch.Tensor:
    return torch.special.erfinv(x.clamp(-1, 1)).sum()


def test_an_unknown_mechanism_still_gets_op_line_and_statistics_in_the_finding() -> None:
    report = stress.fuzz(
        erfinv_at_one,
        x=st.tensors(("B",), min_value=-1, max_value=1),
        modes=("fp32",),
        profile="ci",
    )
    finding = report.findings[0]
    d = finding.diagnosis
    assert d is not None and d["op"] == "aten::erfinv" and d["mechanism"] is None
    assert d["location"].startswith("test_diagnosis.py:") and d["location"].endswith(
        "in erfinv_at_one"
    )
    assert d["inputs"]["max"] == 1.0 and d["output"]["inf"] >= 1
    assert "no known mechanism" in d["explanation"]
    text = str(finding)  # the statistics are in the finding itself, not only in `stress explain`
    assert "inputs: min 1, max 1" in text
    assert "output: no finite value, 0 zeros, 1 inf" in text  # not "min nan, max nan"


class Softmaxish(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(30.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = (x * self.scale).exp()
        return e / e.sum()


def test_module_targets_are_diagnosed_inside_forward() -> None:
    report = stress.fuzz(
        Softmaxish(),
        x=st.activations((4,), min_value=-10, max_value=10),
        modes=("fp16",),
        profile="ci",
    )
    d = report.findings[0].diagnosis
    assert (
        d is not None
        and d["op"] == "aten::exp"
        and d["mechanism"] == "exp overflow"
        and d["location"].endswith("in forward")
    )
    assert "11.09" in d["explanation"]  # fp16's exp overflow threshold


def test_the_tracer_runs_only_on_shrunk_counterexamples(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    from stress.analysis import diagnosis

    original = diagnosis.diagnose

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(diagnosis, "diagnose", counted)
    report = stress.fuzz(
        lambda x: x.exp().sum().log(),
        x=st.tensors(("B",), min_value=-20, max_value=20),
        modes=("fp16",),
        max_examples=50,
        profile="ci",
        jobs=0,
    )
    fails = [f for f in report.findings if f.outcome == "fail"]
    assert len(calls) == len(fails) >= 1
    assert sum(r.examples for r in report.results) > 5 * len(calls)
    assert {"finite_forward", "error"} <= jobs.DIAGNOSED


def test_the_mechanism_table_covers_the_issue_list() -> None:
    names = {name for name, _ in MECHANISMS}
    assert {
        "exp overflow",
        "eps underflow",
        "domain boundary",
        "0/0 after underflow",
        "catastrophic cancellation",
        "reduction overflow",
        "masked row",
        "square root of a negative number",
        "quotient overflow",
        "norm overflow",
        "product overflow",
    } <= names


# ---------------------------------------------------- mechanisms the first release missed


def one_pass_std(x: torch.Tensor) -> torch.Tensor:
    return ((x * x).mean(-1) - x.mean(-1) ** 2).sqrt()


def test_sqrt_of_a_negative_variance_is_named() -> None:
    x = torch.tensor([[1000.1, 1000.1, 1000.5]])
    assert torch.isnan(one_pass_std(x)).any()  # the trigger, in plain torch
    report = stress.fuzz(
        one_pass_std,
        x=st.activations(("B", "D"), min_value=-1e4, max_value=1e4),
        modes=("fp32",),
        max_examples=200,
        profile="ci",
        wrt=(),
    )
    d = diagnosis_of(report, "finite_forward")
    assert d["mechanism"] == "square root of a negative number" and d["op"] == "aten::sqrt", d
    assert d["location"].endswith(
        f"test_diagnosis.py:{line_here(one_pass_std, 'sqrt()')} in one_pass_std"
    )


def mean_by_sum(x: torch.Tensor) -> torch.Tensor:
    return x.sum() / x.numel()  # the sum leaves the dtype although the mean would not


def test_a_float16_sum_past_65504_is_a_reduction_overflow_with_a_float32_hint() -> None:
    report = stress.fuzz(
        mean_by_sum, x=st.tensors((16,), min_value=0, max_value=1e4), modes=("fp16",), profile="ci"
    )
    d = diagnosis_of(report, "finite_forward")
    assert d["mechanism"] == "reduction overflow" and "float32" in d["explanation"]


def test_a_float32_reduction_overflow_is_not_told_to_accumulate_in_float32() -> None:
    report = stress.fuzz(
        mean_by_sum, x=st.tensors((16,), min_value=0, max_value=3e38), modes=("fp32",), profile="ci"
    )
    d = diagnosis_of(report, "finite_forward")
    assert d["mechanism"] == "reduction overflow"
    assert "float64" in d["explanation"] and "float32)" not in d["explanation"]


def ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a / b) * b  # the quotient leaves the dtype although the result would not


def test_a_quotient_that_overflows_is_named() -> None:
    report = stress.fuzz(
        ratio,
        a=st.tensors((2,), min_value=100, max_value=1e4),
        b=st.tensors((2,), min_value=1e-4, max_value=1e-2),
        modes=("fp16",),
        profile="ci",
    )
    d = diagnosis_of(report, "finite_forward")
    assert d["mechanism"] == "quotient overflow" and d["op"] == "aten::div", d


def mean_over_empty(x: torch.Tensor) -> torch.Tensor:
    return x.sum() / 0  # a count that came out 0


def test_a_division_by_the_constant_zero_is_named() -> None:
    report = stress.fuzz(mean_over_empty, x=st.tensors((2,)), modes=("fp32",), profile="ci")
    d = diagnosis_of(report, "finite_forward")
    assert d["mechanism"] == "division by zero" and "the constant 0" in d["explanation"], d


def root_mean_square(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=-1) / math.sqrt(x.shape[-1])  # the norm overflows first


def test_a_norm_that_overflows_is_named() -> None:
    report = stress.fuzz(
        root_mean_square,
        x=st.embeddings(("B", "D"), min_value=-6e4, max_value=6e4),
        modes=("fp16",),
        max_examples=100,
        profile="ci",
    )
    d = diagnosis_of(report, "finite_forward")
    assert d["mechanism"] == "norm overflow" and "float32" in d["explanation"], d


def test_squares_beyond_sqrt_max_overflow() -> None:
    def naive_variance(x: torch.Tensor) -> torch.Tensor:
        return ((x - x.mean()) ** 2).mean().sqrt()

    report = stress.fuzz(
        naive_variance,
        x=st.activations((4,), min_value=-1e4, max_value=1e4),
        modes=("fp16",),
        profile="ci",
    )
    d = diagnosis_of(report, "finite_forward")
    assert (
        d["op"] == "aten::pow"
        and d["mechanism"] == "product overflow"
        and "255.9" in d["explanation"]
    )


def test_a_product_with_a_constant_names_the_constant_not_a_square() -> None:
    x = torch.tensor([1.541], dtype=torch.float16, requires_grad=True)
    d = diagnose(lambda: (x * 65536.0).sum(), Mode("fp16"), 0.01, forward_only=True)
    assert d is not None and d.mechanism == "product overflow", d
    assert "inputs up to 1.541 times the constant 65536" in d.explanation
    assert "|x| > 0.9995 overflows" in d.explanation and "squared" not in d.explanation
    cubed = diagnose(lambda: (x * 40).pow(3).sum(), Mode("fp16"), 0.01, forward_only=True)
    assert cubed is not None and "raised to the power 3" in cubed.explanation, cubed
    # a constant base is not an exponent; a negative exponent overflows near 0
    base = diagnose(lambda: (2 ** (x * 13)).sum(), Mode("fp16"), 0.01, forward_only=True)
    assert base is not None and "the constant 2 raised to powers up to 20.03" in base.explanation
    assert "an exponent above 16 overflows" in base.explanation
    inverse = diagnose(lambda: (x * 1e-3).pow(-2).sum(), Mode("fp16"), 0.01, forward_only=True)
    assert inverse is not None and "inputs as small as 0.001541" in inverse.explanation, inverse
    assert "(|x| < 0.003907 overflows)" in inverse.explanation


def test_an_rsqrt_whose_derivative_overflows_names_the_eps_it_needs() -> None:
    """RMSNorm with eps=1e-6 on a zero row in float16: rsqrt(1e-6) = 993 is fine, its
    derivative ½·x^−1.5 ≈ 5e8 is not — the eps is too small, not the domain's edge."""
    x = torch.zeros(1, 8, dtype=torch.float16, requires_grad=True)
    d = diagnose(
        lambda: (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)).sum().backward(),
        Mode("fp16"),
        0.01,
    )
    assert d is not None and d.mechanism == "derivative overflow", d
    assert "rsqrt reaches 993, so its input is about 1.01e-06" in d.explanation
    assert "must be at least that in float16" in d.explanation and "x = 0.000388" in d.explanation


@pytest.mark.parametrize(
    ("norm", "dtype"),
    [
        (lambda x: F.layer_norm(x, x.shape[-1:]), torch.float32),
        (lambda x: F.group_norm(x.unsqueeze(-1), 1), torch.bfloat16),  # squared in float32
    ],
    ids=["layer_norm-fp32", "group_norm-bf16"],
)
def test_a_fused_normalization_squaring_past_sqrt_max_is_a_statistics_overflow(
    norm: Any, dtype: torch.dtype
) -> None:
    x = torch.tensor([[2.8e19, 1e19]], dtype=dtype)
    assert torch.isnan(norm(x)).all() and torch.isfinite(norm(x.double())).all()  # plain torch
    mode = Mode("fp32" if dtype == torch.float32 else "bf16")
    d = diagnose(lambda: norm(x), mode, 0.01)
    assert d is not None and d.mechanism == "statistics overflow", d
    assert d.record.op in ("aten::native_layer_norm", "aten::native_group_norm")
    assert "in float32 for the variance, beyond 1.845e+19" in d.explanation, d.explanation


# ---------------------------------------------------------------- what is never blamed


def test_the_harness_own_ops_are_never_blamed() -> None:
    """The gradient seed (ones_like) and the copies of the inputs are torch-stress's, not yours."""

    def grad_explodes(x: torch.Tensor) -> torch.Tensor:
        return x.abs().sqrt().sum()  # the derivative at 0 is infinite

    report = stress.fuzz(
        grad_explodes,
        x=st.tensors(("B",), min_value=-1, max_value=1),
        modes=("fp32",),
        profile="ci",
    )
    d = diagnosis_of(report, "finite_gradients")
    assert d["op"] not in ("aten::ones_like", "aten::_to_copy", "aten::clone", "aten::detach"), d
    assert d["location"] is not None and "grad_explodes" in d["location"]


def test_a_forward_finding_blames_a_forward_op() -> None:
    def masked_mean(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return (x * keep).sum(-1) / keep.sum(-1)  # a fully masked row: 0/0

    report = stress.fuzz(
        masked_mean,
        x=st.tensors(("B", "D")),
        keep=st.masks(("B", "D")),
        modes=("fp32",),
        profile="ci",
    )
    d = diagnosis_of(report, "finite_forward")
    assert d["phase"] == "forward" and not d.get("node"), d


def test_masked_rows_and_cancellation() -> None:
    def masked_softmax(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x.float().masked_fill(~mask, -math.inf), -1).sum()

    report = stress.fuzz(
        masked_softmax, x=st.logits((2, 3)), mask=st.masks((2, 3)), modes=("fp32",), profile="ci"
    )
    d = diagnosis_of(report, "finite_forward")
    assert d["mechanism"] == "masked row" and d["op"] == "aten::_softmax"


@pytest.mark.parametrize("wrong_but_finite", [False, True])
def test_an_error_finding_does_not_blame_a_masks_infinite_fill(wrong_but_finite: bool) -> None:
    """A boolean attention mask becomes -inf scores inside SDPA; uninitialised gradient buffers
    (``new_empty_strided``) hold garbage. Neither explains a finite output that is off: a
    non-finite finding (the mask's -inf is all there is) names the mask, an error finding does not."""
    torch.manual_seed(0)
    mode = Mode("bf16")
    q = torch.randn(1, 2, 3, 2, dtype=torch.bfloat16, requires_grad=True)
    keep = torch.tensor([[True, True, False]])

    def run() -> None:
        F.scaled_dot_product_attention(q, q, q, attn_mask=keep[:, None, None, :]).sum().backward()

    found = diagnose(run, mode, mode.tolerance(), wrong_but_finite=wrong_but_finite)
    if wrong_but_finite:
        assert found is None or found.mechanism != "non-finite input", str(found)
    else:
        assert found is not None and found.mechanism == "non-finite input", str(found)
        assert found.record.op == "aten::where"
