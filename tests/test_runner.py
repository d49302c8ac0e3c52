from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import stress
from stress import st


def info_nce(x, y, temp):  # type: ignore[no-untyped-def]
    logits = (x @ y.T) / temp
    return -(logits.diag() - logits.exp().sum(1).log()).mean()


def bounded(x):  # type: ignore[no-untyped-def]
    return torch.tanh(x).mean()


def test_fuzz_finds_the_overflow_in_a_naive_info_nce() -> None:
    report = stress.fuzz(
        info_nce,
        x=st.embeddings(("B", "D")),
        y=st.embeddings(("B", "D")),
        temp=st.temperatures(min_value=0.01, max_value=1.0),
        modes=("fp32", "bf16", "fp16"),
        max_examples=200,
        seed=0,
        profile="ci",
    )
    assert not report.ok
    first = report.findings[0]
    assert first.check == "finite_forward" and first.mode == "fp32"
    assert set(first.counterexample) == {"x", "y", "temp"}
    assert first.counterexample["x"].startswith("embeddings(B=")
    assert "is not finite" in str(first) and "counterexample:" in str(first)
    assert {f.mode for f in report.findings} == {"fp32", "bf16", "fp16"}


def test_a_correct_function_passes_in_every_mode() -> None:
    report = stress.fuzz(
        bounded, x=st.activations(("B", "D")), max_examples=40, seed=1, profile="ci"
    )
    assert report.ok, [str(f) for f in report.findings]
    assert {r.mode for r in report.results} == {"fp32", "fp16", "bf16", "amp-fp16", "amp-bf16"}
    assert all(r.status == "passed" and r.examples > 0 for r in report.results)


def test_same_seed_same_findings() -> None:
    kwargs = dict(
        x=st.embeddings(("B", "D")),
        y=st.embeddings(("B", "D")),
        temp=st.temperatures(),
        modes=("fp16",),
        max_examples=50,
        seed=3,
        profile="dev",
    )
    a, b = stress.fuzz(info_nce, **kwargs), stress.fuzz(info_nce, **kwargs)  # type: ignore[arg-type]
    assert [(f.check, f.counterexample) for f in a.findings] == [
        (f.check, f.counterexample) for f in b.findings
    ]


def test_a_user_exception_is_a_finding_with_its_traceback() -> None:
    def picky(x):  # type: ignore[no-untyped-def]
        if x.shape[0] > 2:
            raise ValueError("batch too large")
        return x.sum()

    report = stress.fuzz(
        picky, x=st.tensors(("B",)), modes=("fp32",), max_examples=30, profile="ci"
    )
    (finding,) = report.findings
    assert finding.check == "exception" and "ValueError: batch too large" in finding.message
    assert finding.counterexample == {"x": "tensors(B=3)"}  # shrunk to the smallest failing size
    assert "picky" in (finding.traceback or "")
    # the user's own line, not torch-stress's frames, and the message only once
    line = picky.__code__.co_firstlineno + 2
    assert f"raised at {Path(__file__).name}:{line} in picky" in str(finding)
    assert str(finding).count("batch too large") == 1


def exp_sum(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x).sum()  # overflows float32 past 88.7


@pytest.mark.parametrize(
    ("profile", "shrink", "expect", "shrunk", "seed"),
    [
        ("ci", None, "fail", False, 0),
        ("ci", None, "pass", True, 0),
        ("ci", "all", "fail", True, 0),
        ("dev", None, "fail", True, 0),
        ("dev", "unexpected", "fail", False, None),
        ("dev", "unexpected", "pass", True, None),  # unseeded: the second attempt repeats the first
    ],
)
def test_the_ci_profile_shrinks_only_the_failures_nobody_expected(
    profile: str,
    shrink: str | None,
    expect: str,
    shrunk: bool,
    seed: int | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRESS_EXAMPLE_DB", str(tmp_path / "examples"))
    report = stress.fuzz(
        exp_sum,
        x=st.tensors(("B",), min_value=-1e3, max_value=1e3),
        dims={"B": (1, 16)},
        expect=expect,
        reason="a documented weakness",
        modes=("fp32",),
        max_examples=100,
        profile=profile,
        shrink=shrink,
        seed=seed,
        jobs=0,
    )
    findings = [f for f in report.findings if f.check == "finite_forward"]
    assert findings and all(f.shrunk is shrunk for f in findings)
    assert all(f.expected is (expect == "fail") for f in findings)
    text = str(findings[0])
    assert ("(as first found, not shrunk)" in text) is not shrunk
    if shrunk:  # one element is enough to overflow
        assert "B=1" in findings[0].counterexample["x"]
    assert report.ok is (expect == "fail")
    policy = shrink or ("unexpected" if profile == "ci" else "all")
    assert report.settings["shrink"] == policy


def test_an_op_without_a_kernel_is_unsupported_not_a_finding() -> None:
    report = stress.fuzz(
        lambda x: torch.cdist(x, x).sum(),
        x=st.embeddings((3, 2)),
        modes=("fp32", "fp16"),
        max_examples=10,
        profile="ci",
    )
    assert report.result("<lambda>", "fp16").status == "unsupported"
    assert "Half" in (report.result("<lambda>", "fp16").reason or "")
    assert report.findings_for("<lambda>", "fp16") == []


def test_a_missed_expected_failure_fails_the_run() -> None:
    report = stress.fuzz(
        bounded,
        x=st.activations(("B",)),
        modes=("fp32",),
        expect="fail",
        reason="planted",
        max_examples=10,
        profile="ci",
    )
    assert report.results[0].status == "xpassed" and not report.ok


def test_may_fail_is_a_non_strict_expectation() -> None:
    def overflows(x):  # type: ignore[no-untyped-def]
        return x.exp().sum().log()  # log-sum-exp without the max: exp overflows float16 at 11.09

    found = stress.fuzz(
        overflows,
        x=st.tensors(("B",), min_value=-20, max_value=20),
        modes=("fp16",),
        expect="may-fail",
        reason="planted",
        max_examples=30,
        profile="ci",
    )
    assert found.results[0].status == "xfailed" and found.ok and found.findings[0].expected
    missed = stress.fuzz(
        bounded,
        x=st.activations(("B",)),
        modes=("fp32",),
        expect="may-fail",
        reason="planted",
        max_examples=10,
        profile="ci",
    )
    assert missed.results[0].status == "passed" and missed.ok


def test_module_targets_get_parameter_gradients_and_cast_parameters() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x):  # type: ignore[no-untyped-def]
            seen.append(self.inner.weight.dtype)
            return self.inner(x) * float("inf")

    report = stress.fuzz(
        Spy(), x=st.activations(("B", 3)), modes=("bf16",), max_examples=5, profile="ci", jobs=0
    )
    assert torch.bfloat16 in seen and torch.float64 in seen
    assert report.findings[0].check == "finite_forward"
    report = stress.fuzz(
        model,
        input=st.activations(("B", 3), max_value=1, min_value=-1),
        modes=("fp32",),
        max_examples=5,
        profile="ci",
        max_grad_norm=1e-9,
    )
    assert report.findings[0].check == "gradient_bound" and "grad['" in report.findings[0].message


def test_wrt_narrows_the_gradients() -> None:
    def f(x, y):  # type: ignore[no-untyped-def]
        return (x * y.sqrt()).sum()  # sqrt'(0) is infinite: only y's gradient can blow up

    report = stress.fuzz(
        f,
        x=st.tensors((2,)),
        y=st.tensors((2,), min_value=0, max_value=1),
        modes=("fp32",),
        wrt=("x",),
        max_examples=30,
        profile="ci",
    )
    assert "finite_gradients" not in [f.check for f in report.findings]


def test_report_is_written_and_an_interrupt_leaves_a_valid_partial_report(tmp_path: Path) -> None:
    calls = {"n": 0}

    def interrupted(x):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        raise KeyboardInterrupt

    first = stress.target(bounded, x=st.activations(("B",)))
    second = stress.target(interrupted, x=st.activations(("B",)))
    with pytest.raises(KeyboardInterrupt):
        stress.run(
            [first, second],
            modes=("fp32",),
            profile="ci",
            max_examples=5,
            report_dir=tmp_path,
            jobs=0,
        )
    (run_dir,) = tmp_path.iterdir()
    data = json.loads((run_dir / "report.json").read_text())
    assert data["complete"] is False and [r["target"] for r in data["results"]] == ["bounded"]
    assert stress.load_report(run_dir).results[0].status == "passed"
    assert "partial" in (run_dir / "report.md").read_text()


def test_findings_keep_their_inputs_for_replay(tmp_path: Path) -> None:
    report = stress.fuzz(
        info_nce,
        x=st.embeddings(("B", "D")),
        y=st.embeddings(("B", "D")),
        temp=st.temperatures(),
        modes=("fp16",),
        max_examples=50,
        profile="ci",
        report_dir=tmp_path,
    )
    assert report.findings, str(report)
    f = report.findings[0]
    assert f.inputs_file is not None
    inputs = torch.load(next(tmp_path.iterdir()) / f.inputs_file, weights_only=True)
    assert inputs["x"].dtype == torch.float16
    assert f.check == "finite_forward"
    assert not torch.isfinite(info_nce(**inputs)).all()  # the stored tensors reproduce the overflow


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(x=st.tensors(("B",)), modes=("fp64",)), "unknown mode 'fp64'"),
        (dict(x=st.tensors(("B",)), device="gpu"), "device='gpu'"),
        (dict(x=st.tensors(("B",)), profile="fast"), "profile='fast'"),
        (dict(x=st.tensors(("B",)), max_examples=0), "max_examples=0"),
        (dict(x=st.tensors(("B",)), shrink="some"), "shrink='some'"),
        (dict(x=st.tensors(("B",)), tolerances={"fp17": 1.0}), "'fp17'"),
        (dict(x=st.tensors(("B",)), expect="maybe"), "expect='maybe'"),
        (dict(x=st.tensors(("B",)), wrt=("z",)), "wrt=('z',)"),
        (dict(), "no strategy for required parameter(s) ['x']"),
        (dict(x=st.tensors(("B",)), z=st.tensors(("B",))), "['z'], which are not parameters"),
        (
            dict(x=st.tensors(("B",)), max_example=3),
            "(max_example looks like the option max_examples)",
        ),
        (dict(x=st.tensors(("B",)), modes="fp16,fp16"), "modes='fp16,fp16': 'fp16' is given twice"),
        (
            dict(x=st.tensors(("B",)), expect="reference_mismatch", reason="r"),
            "names 'reference_mismatch', a check this target does not run (it needs reference=)",
        ),
        (
            dict(x=st.tensors(("B",)), expect="gradient_error", reason="r", gradient_error=False),
            "(it needs gradient_error=True)",
        ),
        (dict(x=st.tensors), "call the strategy"),
    ],
)
def test_bad_arguments_get_clear_errors(kwargs, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(stress.InvalidArgument) as e:
        stress.fuzz(bounded, **kwargs)
    assert needle in str(e.value)


def test_an_expectation_for_a_mode_the_target_does_not_run_is_refused() -> None:
    with pytest.raises(stress.InvalidArgument) as e:
        stress.target(
            bounded, x=st.tensors(("B",)), modes=("fp32",), expect={"bf16": "error"}, reason="r"
        )
    assert "names 'bf16', a mode this target does not run (modes=('fp32',))" in str(e.value)


def test_cross_entropy_in_fp32_passes() -> None:
    report = stress.fuzz(
        F.cross_entropy,
        input=st.logits(("B", "C"), min_value=-1e4, max_value=1e4),
        target=st.targets(("B",), num_classes="C"),
        modes=("fp32",),
        max_examples=40,
        profile="ci",
    )
    assert report.ok, [str(f) for f in report.findings]


def test_a_nan_gradient_is_the_worst_gradient_norm() -> None:
    def root(x):  # type: ignore[no-untyped-def]
        return torch.where(x > 0, x.sqrt(), 0.0).sum()  # 0 · NaN in the untaken branch's grad

    report = stress.fuzz(
        root, x=st.embeddings(("B", "D")), modes=("fp32",), max_examples=20, seed=0, profile="ci"
    )
    result = report.results[0]
    assert "finite_gradients" in {f.check for f in report.findings}
    assert math.isnan(result.worst["grad_norm"])  # not the largest finite norm seen
    assert result.to_dict()["worst"]["grad_norm"] == "nan"


def many_outputs(x):  # type: ignore[no-untyped-def]
    # four outputs whose exp overflows in float16 (inf/inf = NaN; float64 gives 1) ...
    ratios = tuple(torch.exp(20 * x + k) / torch.exp(20 * x + k) for k in range(4))
    # ... and one that loses x to a large offset: an error, another check
    return (*ratios, (x + 1000) - 1000)


_UNIT = st.embeddings(("B", "D"), min_value=-1, max_value=1)


def test_a_check_failing_on_many_outputs_does_not_hide_another_check() -> None:
    report = stress.fuzz(
        many_outputs, x=_UNIT, modes=("fp16",), max_examples=30, seed=0, profile="ci"
    )
    checks = {f.check for f in report.findings}
    assert {"finite_forward", "error"} <= checks, [str(f) for f in report.findings]


def test_ci_notes_expected_failures_as_found_and_shrinks_only_the_unexpected() -> None:
    target = stress.target(
        many_outputs,
        x=_UNIT,
        expect={"fp16": ("finite_forward", "finite_gradients", "gradient_error")},
        reason="exp overflows",
    )
    report = stress.run([target], modes=("fp16",), profile="ci", max_examples=30, seed=0)
    result = report.results[0]
    assert result.status == stress.Status.FAILED and result.shrinking > 0
    assert result.reason is not None and result.reason.startswith("error failed where")
    by_check = {f.check: f for f in report.findings}
    assert not by_check["finite_forward"].shrunk and by_check["finite_forward"].expected
    unexpected = by_check["error"]
    assert unexpected.shrunk and not unexpected.expected
    assert "B=1, D=1" in unexpected.counterexample["x"]  # one element loses its bits
