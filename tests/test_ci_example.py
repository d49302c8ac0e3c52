"""The example GitHub Actions workflow: valid YAML, and every command it runs parses here.

`.ci/run` executes the same commands (shards, merge, compare against the baseline) for real.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import pytest
import yaml

from stress.integrations.cli import _parser
from stress.integrations.flags import add_run_flags

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"
_plugin = argparse.ArgumentParser()
add_run_flags(_plugin.add_argument, prefix="--stress-", dest_prefix="stress_")
PLUGIN_FLAGS = {flag for action in _plugin._actions for flag in action.option_strings} | {
    "--stress-report",
    "--stress-baseline",
}


def commands() -> list[list[str]]:
    data = yaml.safe_load(WORKFLOW.read_text())
    runs = [step["run"] for job in data["jobs"].values() for step in job["steps"] if "run" in step]
    out = []
    for run in runs:
        text = run.replace("${{ matrix.shard }}", "0/2").replace(
            "${{ github.event_name == 'schedule' && 'thorough' || 'ci' }}", "ci"
        )
        assert "${{" not in text, text
        for line in text.replace(" \\\n", " ").splitlines():
            out.append(shlex.split(line))
    return out


def test_workflow_is_valid_yaml_with_shards_junit_summary_and_artifacts() -> None:
    data = yaml.safe_load(WORKFLOW.read_text())
    job = data["jobs"]["stress"]
    assert job["strategy"]["matrix"]["shard"] == ["0/2", "1/2"]
    text = WORKFLOW.read_text()
    for needle in (
        "--junitxml",
        "GITHUB_STEP_SUMMARY",
        "upload-artifact",
        "stress-report/",
        "--stress-baseline",
        "stress merge",
    ):
        assert needle in text


def test_pytest_commands_use_only_plugin_options_that_exist() -> None:
    pytest_runs = [c for c in commands() if c[:3] == ["python", "-m", "pytest"]]
    assert pytest_runs
    for argv in pytest_runs:
        used = {a for a in argv if a.startswith("--stress-")}
        assert used <= PLUGIN_FLAGS, used - PLUGIN_FLAGS


@pytest.mark.parametrize(
    "argv", [c for c in commands() if c and c[0] == "stress"], ids=lambda c: " ".join(c[:2])
)
def test_stress_commands_parse(argv: list[str]) -> None:
    args = _parser().parse_args(argv[1:])
    assert args.command in ("merge", "compare")


def test_the_baseline_the_workflow_gates_on_is_committed() -> None:
    assert (ROOT / "reports" / "baseline" / "report.json").exists()
