"""What users see: mode comparison, the terminal, CI logs, pytest output, shards and merges."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

import stress
from stress import st
from stress.analysis.precision import common_inputs
from stress.integrations.cli import main
from stress.report.compare import FailOn, compare_reports, parse_fail_on
from stress.report.model import Report, Result
from stress.report.storage import load_report

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ comparing precision modes


def naive_info_nce(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = x @ y.T / 0.07
    return -(logits.diag() - logits.exp().sum(1).log()).mean()


def test_compare_modes_gives_every_mode_the_same_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[dict[str, torch.Tensor]]] = {}
    from stress.engine import evaluation

    original = evaluation.FunctionSession.check_values

    def spy(self: Any, values: dict[str, Any], **kw: Any) -> Any:
        seen.setdefault(self.mode.name, []).append({k: v.double() for k, v in values.items()})
        return original(self, values, **kw)

    monkeypatch.setattr(evaluation.FunctionSession, "check_values", spy)
    table = stress.compare_modes(
        naive_info_nce,
        x=st.embeddings(("B", "D"), min_value=-100, max_value=100),
        y=st.embeddings(("B", "D"), min_value=-100, max_value=100),
        max_examples=40,
    )
    first = seen["fp32"]
    for mode, inputs in seen.items():
        assert len(inputs) == len(first) == 40
        for a, b in zip(inputs, first, strict=True):
            assert all(torch.equal(a[k], b[k]) for k in a), mode  # bit-identical across modes
    # the same inputs: float16 cannot fail less often than float32 on a naive InfoNCE
    assert table.loc["fp16", "failure rate"] >= table.loc["fp32", "failure rate"]


def test_common_inputs_are_representable_in_every_dtype() -> None:
    modes = [stress.Mode(m) for m in ("fp32", "fp16", "bf16")]
    x = torch.tensor([1.0 + 2**-20, 3e38, 1e-7, 70000.0, 1 / 3], dtype=torch.float64)
    out = common_inputs({"x": x}, modes)["x"]
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        assert torch.equal(out.to(dtype).double(), out)


# ------------------------------------------------------------------------------- compare


def _report(status: str, error: float = 1.0) -> Report:
    return Report(
        results=[Result("t", "fp16", "cpu", stress.Status(status), worst={"error_eps": error})]
    )


@pytest.mark.parametrize(
    ("rules", "regressed"),
    [
        ("error:2x", True),
        ("+error:2x", True),
        ("-status", False),
        ("-status,error:2x", False),
        ("new-findings,status", True),
        ("-new-findings", True),
    ],
)
def test_fail_on_rules_add_to_the_defaults(rules: str, regressed: bool) -> None:
    """A pass → fail regression: gated unless `-status` drops the default status rule."""
    comparison = compare_reports(_report("passed"), _report("failed"), parse_fail_on(rules))
    assert (not comparison.ok) == regressed


def test_every_combination_of_fail_on_rules_parses() -> None:
    names = ["new-findings", "status", "-new-findings", "-status", "error:2x", "grad:10x"]
    for n in range(1, 4):
        for combo in itertools.combinations(names, n):
            assert isinstance(parse_fail_on(",".join(combo)), FailOn)
    growth = compare_reports(
        _report("passed", 1.0), _report("passed", 5.0), parse_fail_on("error:2x")
    )
    assert not growth.ok and compare_reports(_report("passed", 1.0), _report("passed", 5.0)).ok


def test_compare_prints_mode_labels_in_brackets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stress.report.storage import write_report

    write_report(_report("passed"), tmp_path / "a", html=False)
    write_report(_report("failed"), tmp_path / "b", html=False)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "t[fp16]" in capsys.readouterr().out  # not eaten as Rich markup


# ---------------------------------------------------------------------- terminal and CI logs

BAD = """
import torch
import stress
from stress import st

@stress.target(x=st.tensors(("B",), min_value=-100, max_value=100))
def a_loss_with_a_rather_long_descriptive_name_that_would_wrap(x):
    return x.exp().sum().log()
"""


def test_without_a_terminal_each_result_is_a_line_and_the_table_does_not_wrap(
    tmp_path: Path,
) -> None:
    suite = tmp_path / "long_names.py"
    suite.write_text(textwrap.dedent(BAD))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stress.integrations.cli",
            "run",
            str(suite),
            "--profile",
            "ci",
            "--modes",
            "fp32,fp16",
            "-j",
            "2",
            "--report-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert done.returncode == 1
    assert (
        "[1/2] long_names.a_loss_with_a_rather_long_descriptive_name_that_would_wrap [fp"
        in done.stderr
    )
    assert "[2/2]" in done.stderr
    rows = [
        line
        for line in done.stdout.splitlines()
        if "a_loss_with_a_rather_long" in line and "│" in line
    ]
    assert rows and all("FAIL" in r for r in rows)  # one row per target: the name is not folded


def test_inferred_shapes_fit_together_and_an_exception_says_they_were_inferred(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "masked.py"
    module.write_text(
        "import torch\n"
        "def masked_mean(x, mask):\n"
        "    return (x * mask).sum(-1) / mask.sum(-1).clamp_min(1)\n"
        "def needs_a_square(x):\n"
        "    return (x @ x).sum()\n"
    )
    args = [
        "--modes",
        "fp32",
        "--profile",
        "ci",
        "--no-progress",
        "--report-dir",
        str(tmp_path / "r"),
    ]
    assert main(["fuzz", f"{module}:masked_mean", *args]) in (0, 1)
    out = capsys.readouterr().out
    assert "UNEXPECTED" not in out or "exception" not in out  # x and mask share (B, D)
    assert main(["fuzz", f"{module}:needs_a_square", *args]) == 1
    out = capsys.readouterr().out
    assert "were inferred from their names" in out, out


def test_replay_works_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "mine.py"
    module.write_text("def lse(x):\n    return x.exp().sum().log()\n")
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "fuzz",
                "mine:lse",
                "--arg",
                "x=tensors(('B',), min_value=-100, max_value=100)",
                "--modes",
                "fp16",
                "--profile",
                "ci",
                "--no-progress",
                "--report-dir",
                "r",
            ]
        )
        == 1
    )
    run_dir = next((tmp_path / "r").iterdir())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    sys.modules.pop("mine", None)
    assert stress.replay(run_dir, "1").still_fails


# ------------------------------------------------------------------------- pytest and shards


def test_the_readme_idiom_prints_the_finding_in_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mine="""
        import stress
        from stress import st

        def lse(x):
            return x.exp().sum().log()

        def report():
            return stress.fuzz(lse, x=st.tensors(("B",), min_value=-100, max_value=100), modes=("fp16",), profile="ci")

        def test_assert_ok():
            report().assert_ok()

        def test_str_message():
            r = report()
            assert r.ok, str(r)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*finite_forward failed for lse in fp16 (UNEXPECTED)*",
            "*counterexample: x=tensors(*",
            "*exp overflow*",
        ]
    )


SHARDED = """
import stress
from stress import st

def ok(x):
    return x.tanh().sum()

def test_one(stress_fuzz):
    assert stress_fuzz(ok, x=st.tensors((2,))).ok

def test_two(stress_fuzz):
    assert stress_fuzz(ok, x=st.tensors((3,))).ok

def test_three(stress_fuzz):
    assert stress_fuzz(ok, x=st.tensors((4,))).ok
"""


def test_shards_split_stress_fuzz_tests_and_merge_cleanly(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_sharded=SHARDED)
    ran = []
    for i in range(2):
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--stress-shard",
            f"{i}/2",
            "--stress-modes",
            "fp32",
            "--stress-profile",
            "ci",
            "--stress-max-examples",
            "5",
            "--stress-report",
            str(tmp_path / f"shard-{i}"),
        )
        outcomes = result.parseoutcomes()
        ran.append(outcomes.get("passed", 0))
    assert sum(ran) == 3  # every test in exactly one shard
    assert (
        main(
            [
                "merge",
                str(tmp_path / "shard-0"),
                str(tmp_path / "shard-1"),
                "-o",
                str(tmp_path / "merged"),
            ]
        )
        == 0
    )
    assert len(load_report(tmp_path / "merged").results) == 3
