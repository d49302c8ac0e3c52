"""The precision atlas: PyTorch's losses, normalizations and layers, hand-written research losses
and optimizer steps, with expectations that say what fails, where and why.

- every expectation of every suite is met by the ci run, names the checks it expects, and says
  why; ``may-fail`` carries the rate at which 1000-example searches find it;
- every naive research loss is found in every mode it is expected to fail in, by the checks it
  names, and its stable twin — the same function in float64 — passes in every mode;
- the atlas documents real PyTorch findings;
- a target that fails a different check than the one expected fails the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import stress
from stress import st
from stress.core.modes import MODE_NAMES, Mode
from stress.core.strategies import ScalarStrategy, TensorStrategy
from stress.engine.discovery import collect_targets

SUITES = Path(__file__).resolve().parents[1] / "suites"
ATLAS = ("losses", "normalization", "research", "seeds", "layers", "optimizers")
RESEARCH_PAIRS = (
    "info_nce",
    "soft_nn_alignment",
    "soft_dtw",
    "focal_loss",
    "dice_loss",
    "spectral_loss",
    "nmse",
    "distillation_kl",
    "vae_kl",
)


def atlas_targets() -> dict[str, Any]:
    return {t.name: t for t in collect_targets([str(SUITES / f"{s}.py") for s in ATLAS])}


def expectation(report: stress.Report, name: str, mode: str) -> stress.Expect:
    return report.result(name, mode).expected


def failing_checks(report: stress.Report, name: str, mode: str) -> set[str]:
    return {f.check for f in report.findings_for(name, mode) if f.outcome == "fail"}


# ------------------------------------------------------------------------- expectations


def test_every_expectation_of_every_suite_is_met(suites_report: stress.Report) -> None:
    bad = [
        f"{r.target}[{r.mode}] {r.status}: {r.reason}"
        for r in suites_report.results
        if r.status.fails_run
    ]
    assert not bad, bad
    assert {r.target.partition(".")[0] for r in suites_report.results} >= set(ATLAS)


@pytest.mark.parametrize("suite", ATLAS)
def test_every_expectation_names_its_checks_and_says_why(suite: str) -> None:
    for target in collect_targets([str(SUITES / f"{suite}.py")]):
        for key, e in target.expect.items():
            if e.kind == "pass":
                continue
            assert e.checks, f"{target.name}[{key}]: {e} names no check"
            assert target.reason and len(target.reason) > 30, target.name


def test_may_fail_only_with_a_measured_rate() -> None:
    for name, target in atlas_targets().items():
        for key, e in target.expect.items():
            if e.kind == "may-fail":
                assert e.rate is not None and 0 <= e.rate <= 1, f"{name}[{key}]: {e} has no rate"


# ------------------------------------------------------------------------- research pairs


@pytest.mark.parametrize("mode", MODE_NAMES)
@pytest.mark.parametrize("pair", RESEARCH_PAIRS)
def test_naive_version_is_found_where_expected_by_the_checks_it_names(
    suites_report: stress.Report, pair: str, mode: str
) -> None:
    name = f"research.{pair}_naive"
    result = suites_report.result(name, mode)
    e = expectation(suites_report, name, mode)
    found = failing_checks(suites_report, name, mode)
    if e.kind == "fail":
        assert result.status == "xfailed", (result.status, result.reason)
        assert found and found <= set(e.checks or ()), (found, str(e))
    elif e.kind == "may-fail":
        assert result.status in ("xfailed", "passed"), (result.status, result.reason)
    else:
        assert result.status in ("passed", "limit"), (result.status, found)


@pytest.mark.parametrize("mode", MODE_NAMES)
@pytest.mark.parametrize("pair", RESEARCH_PAIRS)
def test_stable_twin_passes_in_every_mode(
    suites_report: stress.Report, pair: str, mode: str
) -> None:
    name = f"research.{pair}_stable"
    result = suites_report.result(name, mode)
    findings = [str(f) for f in suites_report.findings_for(name, mode)]
    assert result.status == "passed", findings


def benign_inputs(target: Any, size: int = 3) -> dict[str, Any]:
    """Moderate values inside the target's domain: unit-scale gaussian tensors, mid temperatures."""
    dims = {n: max(lo, min(size, hi)) for n, (lo, hi) in target.options.dims.items()}
    names = set().union(*(a.dim_names for a in target.arguments.values()))
    dims = {n: dims.get(n, size) for n in names}
    mode = Mode("fp32")
    values: dict[str, Any] = {}
    for k, (name, a) in enumerate(target.arguments.items()):
        if isinstance(a, TensorStrategy):
            pattern = (
                "random"
                if a.kind == "targets"
                else ("softmax" if a.kind == "probabilities" else "gaussian")
            )
            pattern = "random" if a.kind == "masks" else pattern
            values[name] = a.recipe(dims, pattern=pattern, log10_scale=0.0, seed=k + 1).materialize(
                mode
            )
        else:
            assert isinstance(a, ScalarStrategy), name
            values[name] = (a.min_value * a.max_value) ** 0.5
    return values


@pytest.mark.parametrize(
    "pair",
    [f"research.{p}" for p in RESEARCH_PAIRS]
    + [f"seeds.{p}" for p in ("gtcc_alignment", "info_nce", "layer_norm", "fft_l1")],
)
def test_twins_are_the_same_function(pair: str) -> None:
    """On moderate inputs, in float64, the naive and the stable twin agree: the stable version is
    the same function written the way an expert would, not a different (smoothed) one."""
    targets = atlas_targets()
    naive = targets[f"{pair}_naive"]
    stable = targets.get(f"{pair}_stable") or targets[f"{pair}_fixed"]
    values = benign_inputs(naive)
    a, b = naive.fn(**values), stable.fn(**values)
    assert a.dtype == b.dtype == torch.float64 or b.dtype == torch.float64, (a.dtype, b.dtype)
    assert torch.isfinite(a).all(), a
    torch.testing.assert_close(b.double(), a.double(), rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------- real findings


def test_the_atlas_documents_real_pytorch_findings(suites_report: stress.Report) -> None:
    def finding(name: str, mode: str, check: str) -> stress.Finding:
        found = [
            f
            for f in suites_report.findings_for(name, mode)
            if f.check == check and f.outcome == "fail"
        ]
        assert found, f"no {check} failure of {name} in {mode}"
        return found[0]

    # log(1 + exp(-y x)) without softplus: inf in float32, where the float64 loss is inf as well
    assert "is not finite" in finding("losses.soft_margin_loss", "fp32", "finite_forward").message
    # float16 nll_loss sums before it divides: inf where the mean is representable
    ce = finding("losses.cross_entropy", "fp16", "finite_forward")
    assert "the float64 value there is" in ce.message and "Representability" not in ce.message
    assert all(
        suites_report.result("losses.cross_entropy", m).status == "passed"
        for m in MODE_NAMES
        if m != "fp16"
    )
    # float16 mse_loss squares in float16
    assert (
        "the float64 value there is" in finding("losses.mse_loss", "fp16", "finite_forward").message
    )
    # F.layer_norm in float32 rounds the row mean of a row with a large common offset
    assert suites_report.result("normalization.layer_norm", "fp32").status == "xfailed"
    # logsumexp's backward uses the rounded forward output
    assert finding("normalization.logsumexp", "fp16", "gradient_error")
    # a fully masked row has no softmax
    masked = finding("normalization.masked_softmax", "fp32", "finite_forward")
    assert masked.diagnosis and masked.diagnosis["mechanism"] == "masked row"
    # Adam's eps = 1e-8 is 0 in float16
    adam = finding("optimizers.adam_step", "fp16", "finite_state")
    assert adam.diagnosis and adam.diagnosis["mechanism"] == "eps underflow"
    assert suites_report.result("optimizers.adam_step", "bf16").status == "passed"


# ------------------------------------------------------------------------- verdicts


def _naive_logsumexp(x):  # type: ignore[no-untyped-def]
    return x.exp().sum().log()  # inf in float16 for x > 11.09: a finite_forward failure


@pytest.mark.parametrize(
    ("expect", "status", "ok"),
    [
        ("finite_forward", "xfailed", True),
        ("gradient_error", "failed", False),  # a different check than the one that fails
        (("error", "gradient_error"), "failed", False),
    ],
)
def test_a_different_check_than_expected_fails_the_run(expect: Any, status: str, ok: bool) -> None:
    report = stress.fuzz(
        _naive_logsumexp,
        x=st.activations(("B",), min_value=-20, max_value=20),
        modes=("fp16",),
        expect={"fp16": expect},
        reason="exp overflows float16 for x > 11.09: the sum is not max-subtracted",
        profile="ci",
        jobs=0,
    )
    result = report.result(report.results[0].target, "fp16")
    assert result.status == status, (result.status, result.reason)
    assert report.ok is ok
    if not ok:
        assert "finite_forward failed where" in (result.reason or ""), result.reason
