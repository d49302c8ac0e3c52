from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from stress.integrations.cli import main

BAD_SUITE = """
import torch
import stress
from stress import st

@stress.target(x=st.activations(("B", "D")))
def naive_softmax(x):
    e = x.exp()
    return e / e.sum(-1, keepdim=True)
"""


@pytest.fixture
def bad_suite(tmp_path: Path) -> Path:
    path = tmp_path / "bad_suite.py"
    path.write_text(textwrap.dedent(BAD_SUITE))
    return path


def run(*args: str) -> int:
    return main(["run", *args, "--profile", "ci", "--no-progress"])


def test_run_seeds_exits_0_and_writes_reports(
    suites_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        str(suites_dir / "seeds.py"),
        "--modes",
        "fp32,fp16",
        "--max-examples",
        "20",
        "--report-dir",
        str(tmp_path),
    )
    out = capsys.readouterr().out
    assert code == 0, out
    (run_dir,) = tmp_path.iterdir()
    data = json.loads((run_dir / "report.json").read_text())
    assert data["schema_version"] == 2 and data["complete"] and data["ok"]
    assert "| `seeds.info_nce_naive` |" in (run_dir / "report.md").read_text()
    assert "torch-stress summary" in out and "seeds.info_nce_fixed" in out


def test_an_unexpected_failure_exits_1_and_prints_the_finding(
    bad_suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(str(bad_suite), "--modes", "fp16", "--report-dir", str(tmp_path))
    out = capsys.readouterr().out
    assert code == 1
    assert (
        "failed for bad_suite.naive_softmax in fp16 (UNEXPECTED)" in out
        and "counterexample: x=activations(" in out
    )


def test_k_filters_targets(
    suites_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(
            str(suites_dir / "seeds.py"),
            "-k",
            "layer_norm_fixed",
            "--modes",
            "fp32",
            "--report-dir",
            str(tmp_path),
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "layer_norm_fixed" in out and "info_nce" not in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "no/such/dir"], "no such file or directory 'no/such/dir'"),
        (["run", "no_such_module_xyz"], "cannot import module 'no_such_module_xyz'"),
        (["fuzz", "torch.nn.functional:no_such_fn"], "has no attribute 'no_such_fn'"),
        (["fuzz", "not-a-reference"], "expected 'module:function'"),
        (
            ["fuzz", "torch.nn.functional:softmax", "--arg", "input=bogus((1,))"],
            "cannot parse strategy",
        ),
        (
            ["fuzz", "torch.nn.functional:softmax", "--arg", "input=logits"],
            'call the builder, e.g. \'logits(("B", "D"))\'',
        ),
        (
            ["fuzz", "torch.nn.functional:cosine_embedding_loss"],
            "cannot infer a strategy for parameter 'input1'",
        ),
        (["fuzz", "torch.nn.functional:pairwise_distance"], "cannot read the parameters"),
    ],
)
def test_usage_errors_exit_2_with_a_one_line_message(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*argv, "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--modes", "fp8"], "unknown mode 'fp8'"),
        (["run", "--max-examples", "-5"], "must be an integer >= 1, got '-5'"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_the_parser_rejects_bad_flags_in_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "--help" in err and len(err.strip().splitlines()) == 1, err


def test_inputs_that_cannot_work_stop_the_run_before_any_job(
    suites_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken_suite.py"
    broken.write_text("import stress\nx = (\n")
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("")
    not_json = tmp_path / "baseline.json"
    not_json.write_text("{not json")
    seeds = str(suites_dir / "seeds.py")
    reports = tmp_path / "reports"
    for argv, needle in [
        (["run", str(broken)], f"cannot import {str(broken)!r}: SyntaxError: '(' was never closed"),
        ([seeds, "--report-dir", str(a_file)], f"report_dir={str(a_file)!r} is a file"),
        ([seeds, "--baseline", str(not_json)], "cannot read report"),
    ]:
        argv = argv if argv[0] == "run" else ["run", *argv]
        if "--report-dir" not in argv:
            argv += ["--report-dir", str(reports)]
        assert main([*argv, "--no-progress"]) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, err
        assert not any(reports.glob("*/journal.jsonl")), "a job ran"


def test_fuzz_infers_strategies_from_parameter_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "my_losses.py"
    module.write_text(
        "import torch\ndef stable(logits, temp):\n    return torch.logsumexp(logits.float() / temp, -1).mean()\n"
    )
    code = main(
        [
            "fuzz",
            f"{module}:stable",
            "--modes",
            "fp32",
            "--profile",
            "ci",
            "--no-progress",
            "--report-dir",
            str(tmp_path / "r"),
        ]
    )
    out = capsys.readouterr().out
    assert "stable" in out
    assert code in (0, 1)
    data = json.loads(next((tmp_path / "r").iterdir()).joinpath("report.json").read_text())
    assert data["results"][0]["examples"] > 0
