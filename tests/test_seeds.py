"""The post-mortems of shared/seeds/: every naive target is found where its expectation says, by
the checks it names, and every fixed twin — the same function written the expert's way — passes
against the float64 reference in every mode (or reports only the limits its docstring states)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import stress
from stress.core.modes import MODE_NAMES
from stress.engine.discovery import collect_targets

SUITES = Path(__file__).resolve().parents[1] / "suites"
PAIRS = ["gtcc_alignment", "info_nce", "layer_norm", "fft_l1"]


@pytest.fixture
def seeds_report(suites_report: stress.Report) -> stress.Report:
    return suites_report


def failing_checks(report: stress.Report, name: str, mode: str) -> set[str]:
    return {f.check for f in report.findings_for(name, mode) if f.outcome == "fail"}


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("mode", MODE_NAMES)
def test_naive_is_found_where_expected(seeds_report: stress.Report, name: str, mode: str) -> None:
    naive = seeds_report.result(f"seeds.{name}_naive", mode)
    e = naive.expected
    found = failing_checks(seeds_report, naive.target, mode)
    if e.kind == "fail":
        assert naive.status == "xfailed", (naive.status, naive.reason)
        assert found and found <= set(e.checks or ()), (found, str(e))
    elif e.kind == "may-fail":
        assert naive.status in ("xfailed", "passed") and e.rate is not None
    else:
        assert naive.status == "passed", [
            str(f) for f in seeds_report.findings_for(naive.target, mode)
        ]


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("mode", MODE_NAMES)
def test_fixed_twin_passes_or_shows_only_its_stated_limits(
    seeds_report: stress.Report, name: str, mode: str
) -> None:
    fixed = seeds_report.result(f"seeds.{name}_fixed", mode)
    findings = seeds_report.findings_for(fixed.target, mode)
    assert not [str(f) for f in findings if f.outcome != "limit"]
    assert fixed.status in ("passed", "limit"), fixed.status
    if findings:
        # the fft twin's gradient is that of |X - Y| (a kink where the spectra agree), from inputs
        # that mix scales beyond float32's resolution: its docstring says so
        assert name == "fft_l1", [str(f) for f in findings]
        assert all(
            "Below resolution" in f.message or "Discontinuity" in f.message for f in findings
        )


def test_every_naive_target_fails_in_float16(seeds_report: stress.Report) -> None:
    for name in PAIRS:
        assert seeds_report.result(f"seeds.{name}_naive", "fp16").status == "xfailed", name


def test_info_nce_overflow_is_found_in_bf16_as_the_seed_reports(
    seeds_report: stress.Report,
) -> None:
    (overflow,) = [
        f
        for f in seeds_report.findings_for("seeds.info_nce_naive", "bf16")
        if f.check == "finite_forward" and f.outcome == "fail"
    ]
    assert overflow.diagnosis and overflow.diagnosis["mechanism"] == "exp overflow"


def test_cpu_expectations_say_which_path_they_test() -> None:
    """cdist and fft have no float16/bfloat16 CPU kernels: the naive targets write the formulas
    out on the CPU and call the ops on CUDA, and their reasons say the CPU path was tested."""
    targets: dict[str, Any] = {t.name: t for t in collect_targets([str(SUITES / "seeds.py")])}
    for name in ("seeds.gtcc_alignment_naive", "seeds.fft_l1_naive"):
        target = targets[name]
        assert "CPU path" in (target.reason or ""), name
        assert not any(key.startswith("cuda:") for key in target.expect), name
    module = inspect.getmodule(targets["seeds.fft_l1_naive"].fn)
    assert module is not None
    source = inspect.getsource(module)
    assert "torch.cdist" in source and "torch.fft.rfft" in source
