"""Every finding says where the first NaN/Inf or large error appeared, and why."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import stress
import stress.runner
from stress import st
from stress.analysis.diagnosis import MECHANISMS

SUITES = Path(__file__).resolve().parents[1] / "suites"


def line_of(file: str, text: str, after: str = "") -> int:
    """The line of ``text`` in a suite file (after the line holding ``after``), so edits don't break tests."""
    lines = (SUITES / file).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines[start:], start) if text in line) + 1


# target, mode, check -> op, phase, file, text on the user's line, (function it is in), mechanism
EXPECTED = [
    (
        "seeds.info_nce_naive",
        "fp16",
        "finite_forward",
        "aten::exp",
        "forward",
        "seeds.py",
        "logits.exp()",
        "def info_nce_naive",
        "exp overflow",
    ),
    (
        "seeds.info_nce_naive",
        "bf16",
        "finite_forward",
        "aten::exp",
        "forward",
        "seeds.py",
        "logits.exp()",
        "def info_nce_naive",
        "exp overflow",
    ),
    (
        "seeds.gtcc_alignment_naive",
        "fp16",
        "finite_forward",
        "aten::div",
        "forward",
        "seeds.py",
        "alpha / alpha.sum",
        "def gtcc_alignment_naive",
        "0/0 after underflow",
    ),
    (
        "seeds.gtcc_alignment_naive",
        "fp32",
        "finite_gradients",
        "aten::div",
        "backward",
        "seeds.py",
        ".sum(-1).sqrt()",
        "def pairwise_distance",
        "domain boundary",
    ),
    (
        "seeds.layer_norm_naive",
        "fp16",
        "error",
        "aten::sub",
        "forward",
        "seeds.py",
        "(x - mean) ** 2",
        "def layer_norm_naive",
        "catastrophic cancellation",
    ),
    (
        "seeds.fft_l1_naive",
        "fp32",
        "finite_gradients",
        "aten::div",
        "backward",
        "seeds.py",
        ".sqrt()",
        "def fft_l1_naive",
        "domain boundary",
    ),
    (
        "training.fixed_loss_scale",
        "fp16",
        "finite_state",
        "aten::mm",
        "backward",
        "training.py",
        'model(batch["x"])',
        "def classification",
        "reduction overflow",
    ),
    (
        "training.adam_pure_fp16",
        "fp16",
        "finite_state",
        "aten::addcdiv_",
        "forward",
        "training.py",
        "guard.step(loss_fn(model, batch))",
        "def adam_pure_fp16",
        "eps underflow",
    ),
    (
        "training.step_on_nonfinite_loss",
        "fp32",
        "finite_state",
        "aten::addmm",
        "forward",
        "training.py",
        'model(batch["x"])',
        "def classification",
        "non-finite input",
    ),
]


@pytest.mark.parametrize(
    ("target", "mode", "check", "op", "phase", "file", "text", "after", "mechanism"),
    EXPECTED,
    ids=lambda v: str(v),
)
def test_known_bad_targets_name_op_line_and_mechanism(
    suites_report, target, mode, check, op, phase, file, text, after, mechanism
) -> None:  # type: ignore[no-untyped-def]
    (finding,) = [f for f in suites_report.findings_for(target, mode) if f.check == check]
    d = finding.diagnosis
    assert d is not None, str(finding)
    assert (d["op"], d["phase"], d["mechanism"]) == (op, phase, mechanism), d
    assert d["location"].startswith(f"{file}:{line_of(file, text, after)} in "), d["location"]
    assert "diagnosis: first " in str(finding)


def test_logic_invariants_get_no_numeric_diagnosis(suites_report) -> None:  # type: ignore[no-untyped-def]
    (finding,) = suites_report.findings_for("training.first_micro_batch_scaling", "fp32")
    assert finding.check == "accumulation" and finding.diagnosis is None


def erfinv_at_one(x):  # type: ignore[no-untyped-def]
    return torch.special.erfinv(x.clamp(-1, 1)).sum()


def test_an_unknown_mechanism_still_gets_op_line_and_statistics() -> None:
    report = stress.fuzz(
        erfinv_at_one,
        x=st.tensors(("B",), min_value=-1, max_value=1),
        modes=("fp32",),
        profile="ci",
    )
    d = report.findings[0].diagnosis
    assert d is not None and d["op"] == "aten::erfinv" and d["mechanism"] is None
    assert d["location"].startswith("test_diagnosis.py:") and d["location"].endswith(
        "in erfinv_at_one"
    )
    assert d["inputs"]["max"] == 1.0 and d["output"]["inf"] >= 1
    assert "no known mechanism" in d["explanation"]


class Softmaxish(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(30.0))

    def forward(self, x):  # type: ignore[no-untyped-def]
        e = (x * self.scale).exp()
        return e / e.sum()


def test_module_targets_are_diagnosed_inside_forward() -> None:
    report = stress.fuzz(
        Softmaxish(),
        x=st.activations((4,), min_value=-10, max_value=10),
        modes=("fp16",),
        profile="ci",
    )
    d = report.findings[0].diagnosis
    assert (
        d["op"] == "aten::exp"
        and d["mechanism"] == "exp overflow"
        and d["location"].endswith("in forward")
    )
    assert "11.09" in d["explanation"]  # fp16's exp overflow threshold


def test_the_tracer_runs_only_on_shrunk_counterexamples(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = stress.runner.diagnose
    monkeypatch.setattr(
        stress.runner, "diagnose", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    report = stress.fuzz(
        lambda x: x.exp().sum(),
        x=st.tensors(("B",)),
        modes=("fp16", "fp32"),
        max_examples=50,
        profile="ci",
    )
    assert len(calls) == len(report.findings) >= 2
    assert sum(r.examples for r in report.results) > 5 * len(calls)


def test_the_mechanism_table_covers_the_issue_list() -> None:
    names = {name for name, _ in MECHANISMS}
    assert {
        "exp overflow",
        "eps underflow",
        "domain boundary",
        "0/0 after underflow",
        "catastrophic cancellation",
        "reduction overflow",
        "masked row",
    } <= names


def test_squares_beyond_sqrt_max_overflow() -> None:
    def naive_variance(x):  # type: ignore[no-untyped-def]
        return ((x - x.mean()) ** 2).mean()

    report = stress.fuzz(
        naive_variance,
        x=st.activations((4,), min_value=-1e4, max_value=1e4),
        modes=("fp16",),
        profile="ci",
    )
    d = next(f.diagnosis for f in report.findings if f.check == "finite_forward")
    assert (
        d["op"] == "aten::pow"
        and d["mechanism"] == "product overflow"
        and "255.9" in d["explanation"]
    )


def test_masked_rows_and_cancellation() -> None:
    def masked_softmax(x, mask):  # type: ignore[no-untyped-def]
        return torch.softmax(x.float().masked_fill(~mask, -math.inf), -1).sum()

    report = stress.fuzz(
        masked_softmax, x=st.logits((2, 3)), mask=st.masks((2, 3)), modes=("fp32",), profile="ci"
    )
    d = report.findings[0].diagnosis
    assert d["mechanism"] == "masked row" and d["op"] == "aten::_softmax"

    def variance_one_pass(x):  # type: ignore[no-untyped-def]
        return (x * x).mean() - x.mean() ** 2

    report = stress.fuzz(
        variance_one_pass,
        x=st.activations((8,), min_value=-1e3, max_value=1e3),
        modes=("fp16",),
        profile="ci",
        wrt=(),
    )
    found = [f for f in report.findings if f.diagnosis]
    assert found and any(
        f.diagnosis["mechanism"]
        in ("catastrophic cancellation", "product overflow", "reduction overflow")
        for f in found
    )
