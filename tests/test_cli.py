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


def test_unknown_mode_is_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["run", "--modes", "fp8"])
    assert e.value.code == 2
    assert "unknown mode 'fp8'" in capsys.readouterr().err


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
