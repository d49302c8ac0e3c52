"""The precision atlas: PyTorch's losses and normalizations, and hand-written research losses."""

from __future__ import annotations

import pytest

import stress
from stress.integrations.discovery import collect_targets
from stress.core.modes import MODE_NAMES


def test_every_expectation_of_every_suite_is_met(suites_report: stress.Report) -> None:
    bad = [
        f"{r.target}[{r.mode}] {r.status}"
        for r in suites_report.results
        if r.status in ("failed", "xpassed")
    ]
    assert not bad, bad
    assert len(suites_report.results) >= 300


@pytest.mark.parametrize("suite", ["losses", "normalization", "research"])
def test_every_expected_failure_has_a_reason(suites_dir, suite: str) -> None:  # type: ignore[no-untyped-def]
    for target in collect_targets([str(suites_dir / f"{suite}.py")]):
        if target.expect:
            assert target.reason and len(target.reason) > 20, target.name


def test_research_losses_naive_fail_everywhere_and_stable_versions_pass(
    suites_report: stress.Report,
) -> None:
    names = {r.target for r in suites_report.results if r.target.startswith("research.")}
    naive = sorted(n for n in names if n.endswith("_naive"))
    assert len(naive) == 9
    for name in naive:
        assert {suites_report.result(name, m).status for m in MODE_NAMES} <= {"xfailed", "passed"}
        assert suites_report.result(name, "fp32").status == "xfailed" or name.endswith("nmse_naive")
        stable = name.replace("_naive", "_stable")
        assert all(
            suites_report.result(stable, m).status == "passed"
            for m in ("fp32", "bf16", "amp-fp16", "amp-bf16")
        ), stable


def test_the_atlas_documents_real_pytorch_findings(suites_report: stress.Report) -> None:
    soft_margin = suites_report.findings_for("losses.soft_margin_loss", "fp16")
    assert (
        soft_margin and "is not finite" in soft_margin[0].message
    )  # log(1 + exp(-y x)) without softplus
    masked = suites_report.findings_for("normalization.masked_softmax", "fp32")
    assert masked and masked[0].diagnosis and masked[0].diagnosis["mechanism"] == "masked row"
    assert all(
        r.status == "passed"
        for r in suites_report.results
        if r.target == "losses.cross_entropy" and r.mode != "fp16"
    )
