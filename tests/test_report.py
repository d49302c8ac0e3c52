"""Reports: schema, round trips, views, compare, replay, merge and compare_modes."""

from __future__ import annotations

import html
import json
import math
import re
import shlex
import textwrap
from pathlib import Path

import jsonschema
import pytest
import torch

import stress
from stress import ReportError, st
from stress.integrations.cli import main
from stress.report.compare import FailOn, compare_reports, parse_fail_on
from stress.report.html import heat_cell
from stress.report.model import Finding, finding_from_dict
from stress.report.storage import load_report, write_report

SCHEMA = json.loads((Path(stress.__file__).parent / "report" / "schema.json").read_text())

NAIVE = """
import torch
import stress
from stress import st

@stress.target(x=st.logits(("B", "C"), min_value=-1e3, max_value=1e3), temp=st.temperatures(0.01, 1.0))
def softmax_loss(x, temp):
    e = (x / temp).exp()
    return -(e / e.sum(-1, keepdim=True)).log().mean()
"""
FIXED = """
import torch
import stress
from stress import st

@stress.target(x=st.logits(("B", "C"), min_value=-1e3, max_value=1e3), temp=st.temperatures(0.01, 1.0))
def softmax_loss(x, temp):
    return -torch.log_softmax(x.float() / temp, -1).mean()
"""


def suite(tmp_path: Path, body: str, name: str = "losses") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def run_suite(path: Path, out: Path, *modes: str) -> Path:
    code = main(
        [
            "run",
            str(path),
            "--profile",
            "ci",
            "--no-progress",
            "--report-dir",
            str(out),
            "--modes",
            ",".join(modes or ("fp32", "fp16")),
        ]
    )
    assert code in (0, 1)
    return max(out.iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.fixture(scope="module")
def naive_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("naive")
    return run_suite(suite(tmp, NAIVE), tmp / "reports")


def test_written_reports_validate_against_the_schema(naive_run: Path) -> None:
    data = json.loads((naive_run / "report.json").read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["findings"] and data["results"][0]["stability"] is not None


def test_the_replay_command_names_the_report(naive_run: Path) -> None:
    md = (naive_run / "report.md").read_text()
    html = (naive_run / "report.html").read_text()
    assert f"stress replay {naive_run} '" in md and f"stress replay {naive_run} " in html
    assert "REPORT" not in md


@pytest.mark.parametrize("key", ["out", "grad['x']", 'grad["w"]'])
def test_a_replay_command_pastes_into_a_shell(key: str) -> None:
    finding = Finding(
        "seeds.loss", "fp16", "finite_gradients", "m", {}, key=key, inputs_file="f", source="s"
    )
    command = finding.replay_command("reports/run 1")
    assert command is not None
    assert shlex.split(command) == ["stress", "replay", "reports/run 1", finding.id]


def test_a_small_counterexample_is_shown_by_value() -> None:
    from stress.report.render import counterexample_text

    def finding(x: torch.Tensor) -> Finding:
        return Finding(
            "t",
            "fp16",
            "error",
            "m",
            {"x": "logits(B=1, C=2)", "t": "0.07"},
            inputs={"x": x, "t": 0.07},
        )

    assert counterexample_text(finding(torch.tensor([[100.0, -3.25]]))) == (
        "x=logits(B=1, C=2) = [[100, -3.25]], t=0.07"
    )
    assert counterexample_text(finding(torch.zeros(3, 3))) == "x=logits(B=1, C=2), t=0.07"
    # the values travel with the report: report.html and `stress explain` read a loaded one
    loaded = finding_from_dict(
        json.loads(json.dumps(finding(torch.tensor([[100.0, -3.25]])).to_dict()))
    )
    assert loaded.inputs is None
    assert counterexample_text(loaded) == "x=logits(B=1, C=2) = [[100, -3.25]], t=0.07"


def test_round_trip(naive_run: Path, tmp_path: Path) -> None:
    report = load_report(naive_run)
    write_report(report, tmp_path)
    again = json.loads((tmp_path / "report.json").read_text())
    original = json.loads((naive_run / "report.json").read_text())
    assert again == original


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "cannot read report"),
        ('{"results": []}', "not a torch-stress report"),
        ('{"schema_version": 0}', "schema_version=0 is not supported"),
        ('{"schema_version": 1, "results": []}', "schema_version=1 is not supported"),
        ('{"schema_version": 2, "results": [{"target": 3}]}', "corrupt report"),
    ],
)
def test_corrupt_or_old_reports_give_clear_errors(
    tmp_path: Path, content: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "report.json").write_text(content)
    with pytest.raises(ReportError, match=re.escape(needle)):
        load_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_missing_report_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "no report at" in capsys.readouterr().err


def test_html_is_self_contained_with_its_plots(naive_run: Path) -> None:
    page = (naive_run / "report.html").read_text()
    assert "<script" not in page and not re.search(r"(src|href)=[\"']https?:", page)
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert any(alt.startswith("Worst error of each target") for alt in images)
    # the small multiples are markup: a box plot per target, a coloured table per mode
    boxes = re.findall(
        r'<svg class="boxes" role="img" aria-label="Gradient norm[^>]*>(.*?)</svg>', page, re.S
    )
    assert boxes and all("<rect" in b and "<title>" in b for b in boxes)
    assert re.search(
        r'<figure class="maps" aria-label="Stability map of [^"]+">\s*<table class="map">', page
    )
    assert re.search(r'<td style="background:#[0-9a-f]{6}" title="[^"]*: fails \d+%"></td>', page)
    assert "softmax_loss" in page and "counterexample" in page


def test_the_heat_map_shows_a_gradient_error_when_it_is_the_worse(naive_run: Path) -> None:
    result = load_report(naive_run).results[0]  # fp32: tolerances 1e-4 (output), 1e-3 (gradient)
    result.options["tolerances"] = None
    result.worst.update(error=2e-4, grad_error=5e-2)
    assert heat_cell(result) == (pytest.approx(50.0), "∇ 50")
    result.worst.update(error=3e-3, grad_error=1e-2)
    assert heat_cell(result) == (pytest.approx(30.0), "30")
    result.worst.update(grad_error=math.nan)
    assert heat_cell(result) == (math.inf, "NaN/Inf")
    # a target's own tolerances: outputs and gradients each have theirs
    result.options.update(tolerances={"fp32": 1e-3}, gradient_tolerances={"fp32": 1e-1})
    result.worst.update(error=2e-3, grad_error=1e-1)
    assert heat_cell(result) == (pytest.approx(2.0), "2")
    # a failure its errors do not show is not a quiet green cell
    result.worst.update(error=1e-4, grad_error=1e-3)
    result.status = stress.Status.FAILED
    assert heat_cell(result) == (pytest.approx(0.1), "FAIL 0.1")


def test_markdown_has_the_matrix_and_the_findings(naive_run: Path) -> None:
    md = (naive_run / "report.md").read_text()
    assert "| `losses.softmax_loss` |" in md and "## Findings" in md


def test_compare_flags_a_planted_regression_and_a_fix(
    tmp_path: Path, naive_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixed_run = run_suite(suite(tmp_path, FIXED), tmp_path / "reports")
    assert main(["compare", str(naive_run), str(fixed_run)]) == 0  # only fixes
    out = capsys.readouterr().out
    assert "fix" in out and "regression(s)" in out
    md = tmp_path / "compare.md"
    assert (
        main(["compare", str(fixed_run), str(naive_run), "--markdown", str(md)]) == 1
    )  # new findings
    assert "regression" in md.read_text()
    comparison = compare_reports(load_report(fixed_run), load_report(naive_run))
    assert {c.key.split(":")[-1] for c in comparison.regressions} >= {"finite_forward"}


def test_run_with_a_baseline_fails_only_on_regressions(
    tmp_path: Path, naive_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = suite(tmp_path, NAIVE)
    args = [
        "run",
        str(path),
        "--profile",
        "ci",
        "--no-progress",
        "--modes",
        "fp32,fp16",
        "--report-dir",
        str(tmp_path / "r"),
    ]
    assert main(args) == 1  # the naive loss fails on its own
    capsys.readouterr()
    assert main([*args, "--baseline", str(naive_run)]) == 0  # but nothing regressed
    out = capsys.readouterr().out
    assert "FAILED (against a baseline only regressions fail the run)" in out


def test_compare_says_no_changes_and_names_an_unwritable_markdown_path(
    tmp_path: Path, naive_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    code = main(["compare", str(naive_run), str(naive_run), "--markdown", f"{blocked}/diff.md"])
    captured = capsys.readouterr()
    assert "compare: no changes" in captured.out
    assert code == 2 and captured.err.startswith(f"stress compare: --markdown {blocked}/diff.md:")
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1


def test_a_scheduler_that_is_no_address_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("distributed")
    path = suite(tmp_path, NAIVE)
    code = main(
        [
            "run",
            str(path),
            "--scheduler",
            "foo",
            "--no-progress",
            "--report-dir",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("stress run: scheduler='foo': cannot connect")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_worse_errors_and_environment_changes(naive_run: Path) -> None:
    base, new = load_report(naive_run), load_report(naive_run)
    base.results[0].worst["error_eps"], new.results[0].worst["error_eps"] = 2.0, 50.0
    base.results[1].worst["error_eps"], new.results[1].worst["error_eps"] = 2.0, math.inf
    new.environment["torch"] = "9.9.9"
    comparison = compare_reports(base, new, parse_fail_on("error:2x"))
    grown = [c.key for c in comparison.regressions if "worst error_eps" in c.detail]
    assert sorted(grown) == sorted(
        [new.results[0].id, new.results[1].id]
    )  # 25 times, and to NaN/Inf
    assert any("torch" in w for w in comparison.warnings)
    assert compare_reports(base, new, FailOn()).ok  # error growth is not gated by default


def test_a_gradient_norm_turned_nan_is_a_regression_under_the_grad_rule(naive_run: Path) -> None:
    base, new = load_report(naive_run), load_report(naive_run)
    base.results[0].worst["grad_norm"], new.results[0].worst["grad_norm"] = 3.0, math.nan
    comparison = compare_reports(base, new, parse_fail_on("grad:10x"))
    grown = [c for c in comparison.regressions if "worst grad_norm" in c.detail]
    assert [c.key for c in grown] == [new.results[0].id]
    assert "to NaN/Inf" in grown[0].detail


@pytest.mark.parametrize("rule", ["", "error:1x", "error:2", "speed:2x", "new_findings"])
def test_fail_on_rules_are_parsed_up_front(rule: str) -> None:
    with pytest.raises(stress.InvalidArgument, match="fail-on"):
        parse_fail_on(rule)


def test_replay_says_whether_a_finding_still_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = suite(tmp_path, NAIVE, name="replayed")
    run_dir = run_suite(path, tmp_path / "reports", "fp16")
    assert main(["replay", str(run_dir), "1"]) == 1
    assert "still fails" in capsys.readouterr().out
    path.write_text(textwrap.dedent(FIXED))  # the user fixes the loss
    outcome = stress.replay(run_dir, "1")
    assert not outcome.still_fails and "passes now" in str(outcome)
    with pytest.raises(stress.InvalidArgument, match="matches 0 findings"):
        stress.replay(run_dir, "nothing-like-this")


def test_finding_numbers_are_those_the_reports_show(naive_run: Path) -> None:
    shown = re.findall(r"^### (\d+)\. `([^`]+)`", (naive_run / "report.md").read_text(), re.M)
    assert len(shown) >= 2, shown
    page = html.unescape((naive_run / "report.html").read_text())
    for number, finding_id in shown:
        assert stress.replay(naive_run, number).finding.id == finding_id
        assert f"<h3>{number}. {finding_id}</h3>" in page


def test_merge_joins_shards_and_copies_their_tensors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = run_suite(suite(tmp_path, NAIVE, name="shard_a"), tmp_path / "a")
    b = run_suite(suite(tmp_path, FIXED, name="shard_b"), tmp_path / "b")
    out = tmp_path / "merged"
    assert (
        main(["merge", str(a), str(b / "report.json"), "-o", str(out)]) == 1
    )  # shard a has unexpected findings
    merged = load_report(out)
    assert {r.target for r in merged.results} == {"shard_a.softmax_loss", "shard_b.softmax_loss"}
    assert all((out / f.inputs_file).exists() for f in merged.findings if f.inputs_file)
    jsonschema.validate(json.loads((out / "report.json").read_text()), SCHEMA)
    assert main(["merge", str(a), str(a), "-o", str(tmp_path / "dup")]) == 2
    assert "more than one report" in capsys.readouterr().err
    assert not (tmp_path / "dup").exists()  # nothing half-written


def test_compare_modes_returns_a_table_per_mode(tmp_path: Path) -> None:
    def naive(x: torch.Tensor, temp: float) -> torch.Tensor:
        e = (x / temp).exp()
        return (e / e.sum(-1, keepdim=True)).max()

    table = stress.compare_modes(
        naive,
        x=st.logits(("B", "C")),
        temp=st.temperatures(),
        max_examples=40,
        html=tmp_path / "modes.html",
    )
    assert list(table.index) == ["fp32", "fp16", "bf16", "amp-fp16", "amp-bf16"]
    assert (table["examples"] == 40).all()
    assert table.loc["fp16", "failure rate"] >= table.loc["fp32", "failure rate"] > 0
    assert "data:image/png;base64," in (tmp_path / "modes.html").read_text()
    # every failed check of an example is counted, not only the first
    counted = [
        int(part.rpartition("×")[2])
        for part in table.loc["fp32", "failed checks"].split(", ")
        if part
    ]
    assert sum(counted) >= table.loc["fp32", "failures"]


def test_step_findings_validate_too(tmp_path: Path) -> None:
    report = stress.fuzz_step(
        lambda m, o, mode: lambda b, loss_fn: (loss_fn(m, b).backward(), o.step(), o.zero_grad()),
        model=lambda: torch.nn.Linear(2, 1),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        loss=lambda m, b: m(b["x"]).float().pow(2).mean(),
        batch={"x": st.activations(("B", 2), min_value=-1, max_value=1)},
        faults=("nan_batch",),
        modes=("fp32",),
        profile="ci",
        report_dir=str(tmp_path),
    )
    assert not report.ok
    jsonschema.validate(
        json.loads(next(tmp_path.iterdir()).joinpath("report.json").read_text()), SCHEMA
    )
