"""The pytest plugin, driven through pytester in subprocesses."""

from __future__ import annotations

import json

import pytest

SUITE = """
import torch
import stress
from stress import st

@stress.target(x=st.activations(("B", "D")))
def naive_softmax(x):
    e = x.exp()
    return e / e.sum(-1, keepdim=True)

@stress.target(x=st.activations(("B", "D")))
def stable_softmax(x):
    return torch.softmax(x.float(), -1)

@stress.target(x=st.activations(("B", "D"), min_value=-100, max_value=100), expect="finite_forward", reason="exp overflows")
def known_bad(x):
    return x.exp().sum().log()

@stress.target(x=st.activations(("B", "D"), min_value=-1, max_value=1), expect="fail", reason="planted: never fails")
def wrongly_expected(x):
    return torch.tanh(x).mean()
"""
FAST = [
    "--stress-profile",
    "ci",
    "--stress-modes",
    "fp32",
    "--stress-max-examples",
    "20",
    "-p",
    "no:cacheprovider",
]


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(losses=SUITE)
    return pytester


def test_targets_are_collected_per_mode(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(
        "losses.py", "--collect-only", "-q", "--stress-modes", "fp32,bf16"
    )
    result.stdout.fnmatch_lines(
        ["losses.py::naive_softmax[fp32]", "losses.py::naive_softmax[bf16]", "*8 tests collected*"]
    )


def test_outcomes_and_failure_output(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("losses.py", *FAST, "-rfxX")
    result.assert_outcomes(passed=1, failed=2, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*finite_forward failed for losses.naive_softmax in fp32 (UNEXPECTED)*",
            "*counterexample: x=activations(*",
            "*XPASS(strict)*expected fail (any check), but no such failure was found*planted: never fails*",
        ]
    )
    # the short summary says which checks failed
    result.stdout.fnmatch_lines(
        ["FAILED losses.py::naive_softmax[[]fp32[]] - failed: finite_forward*"]
    )
    assert "runner.py" not in result.stdout.str()  # harness frames stay hidden


def test_bad_options_are_usage_errors(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("losses.py", "--stress-modes", "fp8")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*unknown mode 'fp8'; accepted modes are fp32, fp16, bf16, amp-fp16, amp-bf16*"]
    )
    result = suite.runpytest_subprocess("losses.py", "--stress-shard", "3/2")
    result.stderr.fnmatch_lines(["*shard must be i/n with 0 <= i < n*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            'modez=("fp32",)',
            "*@pytest.mark.stress takes keywords only; got unknown *modez*accepted: backward_error*",
        ),
        ('modes=("fp17",)', "*test_it: @pytest.mark.stress: *unknown mode 'fp17'*"),
        ("max_examples=-1", "*test_it: @pytest.mark.stress: *max_examples*"),
    ],
)
def test_marker_keywords_and_values_are_validated_at_collection(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        test_marked=f"""
        import pytest

        @pytest.mark.stress({marker})
        def test_it(stress_fuzz):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_report_merges_items_and_fuzz_calls_from_ordinary_tests(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_uses_fixture="""
        import pytest
        import torch
        from stress import st

        @pytest.mark.stress(modes=("fp16",), max_examples=10)
        def test_fuzz_in_a_test(stress_fuzz):
            report = stress_fuzz(lambda x: torch.tanh(x).sum(), x=st.activations((3,), min_value=-1, max_value=1))
            assert {r.mode for r in report.results} == {"fp16"}
        """
    )
    result = suite.runpytest_subprocess(
        "losses.py", "test_uses_fixture.py", *FAST, "--stress-report", "out"
    )
    result.assert_outcomes(passed=2, failed=2, xfailed=1)
    data = json.loads((suite.path / "out" / "report.json").read_text())
    targets = {(r["target"], r["mode"]) for r in data["results"]}
    assert ("losses.naive_softmax", "fp32") in targets
    assert ("test_uses_fixture.py::test_fuzz_in_a_test::<lambda>", "fp16") in targets
    assert (suite.path / "out" / "report.html").exists()


def test_baseline_gates_only_regressions(suite: pytest.Pytester) -> None:
    first = suite.runpytest_subprocess(
        "losses.py", *FAST, "-k", "not wrongly", "--stress-report", "base"
    )
    first.assert_outcomes(passed=1, failed=1, xfailed=1)
    again = suite.runpytest_subprocess(
        "losses.py", *FAST, "-k", "not wrongly", "--stress-baseline", "base/report.json"
    )
    again.assert_outcomes(passed=1, xfailed=2)  # the naive softmax is known in the baseline


def test_an_unreadable_baseline_stops_the_session_in_one_line(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("losses.py", *FAST, "--stress-baseline", "nope.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --stress-baseline nope.json: no report at 'nope.json'*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_xdist_merges_one_report(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("losses.py", *FAST, "-n", "2", "--stress-report", "out")
    result.assert_outcomes(passed=1, failed=2, xfailed=1)
    data = json.loads((suite.path / "out" / "report.json").read_text())
    assert len(data["results"]) == 4 and data["findings"]
    assert all(
        (suite.path / "out" / f["inputs_file"]).exists()
        for f in data["findings"]
        if f["inputs_file"]
    )


def test_shards_split_targets_deterministically(suite: pytest.Pytester) -> None:
    names = []
    for shard in ("0/2", "1/2"):
        result = suite.runpytest_subprocess(
            "losses.py", "--collect-only", "-q", "--stress-modes", "fp32", "--stress-shard", shard
        )
        names.append({line for line in result.stdout.lines if "::" in line})
    assert names[0] and names[1] and not names[0] & names[1]
    assert len(names[0] | names[1]) == 4
