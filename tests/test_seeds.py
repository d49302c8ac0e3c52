"""The post-mortems of shared/seeds/: every naive target is found, every fixed twin passes."""

from __future__ import annotations

import pytest

import stress
from stress.core.modes import MODE_NAMES


@pytest.fixture
def seeds_report(suites_report: stress.Report) -> stress.Report:
    return suites_report


PAIRS = ["gtcc_alignment", "info_nce", "layer_norm", "fft_l1"]


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("mode", MODE_NAMES)
def test_naive_is_found_where_expected_and_fixed_twin_passes(
    seeds_report: stress.Report, name: str, mode: str
) -> None:
    naive = seeds_report.result(f"seeds.{name}_naive", mode)
    fixed = seeds_report.result(f"seeds.{name}_fixed", mode)
    assert fixed.status == "passed", [str(f) for f in seeds_report.findings_for(fixed.target, mode)]
    if naive.expected == "fail":
        assert naive.status == "xfailed"
        assert seeds_report.findings_for(naive.target, mode)
    elif naive.expected == "may-fail":
        assert naive.status in ("xfailed", "passed")
    else:
        assert naive.status == "passed"


def test_every_naive_target_fails_in_the_low_precision_modes(seeds_report: stress.Report) -> None:
    for name in PAIRS:
        assert seeds_report.result(f"seeds.{name}_naive", "fp16").status == "xfailed"
    assert seeds_report.ok


def test_info_nce_overflow_is_found_in_bf16_as_the_seed_reports(
    seeds_report: stress.Report,
) -> None:
    checks = {f.check for f in seeds_report.findings_for("seeds.info_nce_naive", "bf16")}
    assert "finite_forward" in checks
