"""Differential testing: a custom op, kernel or loss checked against a trusted reference."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

import stress
from stress import Outcome, Status, st
from stress.integrations.cli import main

FP32 = ("fp32",)


def fails(report: stress.Report, check: str) -> list[stress.Finding]:
    return [f for f in report.findings if f.check == check and f.outcome == Outcome.FAIL]


# ------------------------------------------ gap 1: wrong the same way in every precision


def padded_max_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(~mask, -1e9).amax(-1)  # a fully padded row returns the fill value


def trusted_max_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    filled = x.masked_fill(~mask, -math.inf).amax(-1)
    return torch.where(mask.any(-1), filled, torch.zeros_like(filled))


POOL: dict[str, Any] = dict(
    x=st.activations(("B", "L"), min_value=-10, max_value=10), mask=st.masks(("B", "L"))
)


def test_a_semantic_bug_passes_against_itself_and_is_found_against_a_reference() -> None:
    alone = stress.fuzz(padded_max_pool, **POOL, modes=FP32, max_examples=100, profile="ci")
    assert alone.ok  # float64 agrees with float32: the function is precise, and wrong
    checked = stress.fuzz(
        padded_max_pool,
        **POOL,
        reference=trusted_max_pool,
        modes=FP32,
        max_examples=100,
        profile="ci",
    )
    (finding,) = fails(checked, "reference_mismatch")
    assert "differs from the reference trusted_max_pool (float64)" in finding.message
    assert "Semantic: the target differs from the reference even in float64" in finding.message
    assert finding.inputs is not None and not bool(
        finding.inputs["mask"].any(-1).all()
    )  # a fully padded row


def survival_nll(risk: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Cox partial likelihood shifted by the *global* max, with an eps inside the log: rows far
    below the max give log(eps) instead of their log-sum-exp — finite, and wrong in float64 too."""
    shifted = risk - risk.max()
    cum = shifted.exp().flip(-1).cumsum(-1).flip(-1)
    return -((shifted - (cum + 1e-8).log()) * event).sum(-1) / event.sum(-1).clamp_min(1)


def trusted_survival_nll(risk: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    log_cum = torch.logcumsumexp(risk.flip(-1), -1).flip(-1)
    return -((risk - log_cum) * event).sum(-1) / event.sum(-1).clamp_min(1)


def test_a_finite_but_wrong_survival_loss_is_found_against_its_reference() -> None:
    kwargs: dict[str, Any] = dict(
        risk=st.activations(("B", "T"), min_value=-20, max_value=20),
        event=st.probabilities(("B", "T")),
        modes=FP32,
        max_examples=100,
        profile="ci",
    )
    alone = stress.fuzz(survival_nll, **kwargs)
    assert not [
        f for f in alone.findings if f.check in ("error", "finite_forward")
    ]  # invisible alone
    checked = stress.fuzz(survival_nll, reference=trusted_survival_nll, **kwargs)
    semantic = [f for f in fails(checked, "reference_mismatch") if "Semantic" in f.message]
    assert semantic and semantic[0].key == "out"


# ---------------------------------- gap 2: a kernel that does not run in float64 at all


def float32_only_softmax(x: torch.Tensor) -> torch.Tensor:
    """Like a Triton kernel: no float64 version; and a planted error (a truncated exponent)."""
    if x.dtype == torch.float64:
        raise TypeError("float32_only_softmax: float64 is not supported")
    e = (x - x.amax(-1, keepdim=True)).clamp_min(-3).exp()  # planted: tails below e^-3 are lifted
    return e / e.sum(-1, keepdim=True)


def test_a_kernel_without_float64_is_unverified_not_passed() -> None:
    report = stress.fuzz(
        float32_only_softmax,
        x=st.logits(("B", "C"), min_value=-30, max_value=30),
        modes=FP32,
        max_examples=30,
        profile="ci",
    )
    (result,) = report.results
    assert result.status == Status.UNVERIFIED and "no float64 reference" in (result.reason or "")
    # the one-line verdict says OK, and the next line why it checked less than asked
    assert f"{result.id} unverified: no float64 reference" in str(report)


def test_a_reference_that_cannot_take_the_arguments_is_refused_up_front() -> None:
    def mean(x: torch.Tensor) -> torch.Tensor:
        return x.mean()

    def mean_of_two(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x + y).mean()

    with pytest.raises(stress.InvalidArgument, match=r"reference=.*mean_of_two cannot be called"):
        stress.target(mean, x=st.tensors((2,)), reference=mean_of_two)
    with pytest.raises(stress.InvalidArgument, match=r"reference='torch:meen'.*include mean"):
        stress.target(mean, x=st.tensors((2,)), reference="torch:meen")


def test_a_kernel_without_float64_is_checked_against_a_float32_reference_and_its_error_found() -> (
    None
):
    report = stress.fuzz(
        float32_only_softmax,
        x=st.logits(("B", "C"), min_value=-30, max_value=30),
        reference=lambda x: torch.softmax(x, -1),
        reference_dtype=torch.float32,
        modes=("fp32", "fp16"),
        max_examples=100,
        profile="ci",
    )
    found = fails(report, "reference_mismatch")
    assert {f.mode for f in found} == {"fp32", "fp16"}
    assert "(float32)" in found[0].message and "cannot run in float64" in found[0].message


# ---------------------------------------------------------------- the built-in references


def my_rms_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def test_reference_torch_picks_the_op_of_the_same_name() -> None:
    report = stress.fuzz(
        my_rms_norm,
        x=st.activations(("B", "D"), min_value=-100, max_value=100),
        reference="torch",
        modes=FP32,
        max_examples=60,
        profile="ci",
    )
    assert report.ok, str(report)
    assert "reference_mismatch" in report.results[0].checks


def test_reference_torch_says_what_it_knows() -> None:
    def frobnicate(x: torch.Tensor) -> torch.Tensor:
        return x

    with pytest.raises(
        stress.InvalidArgument, match="needs a target whose name ends with a known op"
    ):
        stress.fuzz(frobnicate, x=st.tensors((2,)), reference="torch", modes=FP32, max_examples=1)

    def fused_softmax(logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, -1)

    with pytest.raises(stress.InvalidArgument, match=r"calls the softmax adapter with \(x, dim\)"):
        stress.fuzz(
            fused_softmax, logits=st.logits((2, 3)), reference="torch", modes=FP32, max_examples=1
        )


def fuzz_masked_max_cli(tmp_path: Path, function: str, reference: str) -> int:
    """``stress fuzz`` of a masked max over (B, L) with ``--reference``, in fp32, ci profile."""
    return main(
        [
            "fuzz",
            function,
            "--arg",
            "x=activations(('B', 'L'), min_value=-10, max_value=10)",
            "--arg",
            "mask=masks(('B', 'L'))",
            "--reference",
            reference,
            "--modes",
            "fp32",
            "--profile",
            "ci",
            "--no-progress",
            "--report-dir",
            str(tmp_path / "r"),
        ]
    )


def test_compare_modes_and_the_cli_take_a_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = stress.compare_modes(
        padded_max_pool, **POOL, reference=trusted_max_pool, modes=("fp32", "bf16"), max_examples=40
    )
    assert (table["failure rate"] > 0).all() and "reference_mismatch" in table.loc[
        "fp32", "failed checks"
    ]
    module = tmp_path / "kernels.py"
    module.write_text(
        textwrap.dedent(
            """
            import torch

            def padded_max_pool(x, mask):
                return x.masked_fill(~mask, -1e9).amax(-1)

            def trusted(x, mask):
                filled = x.masked_fill(~mask, float("-inf")).amax(-1)
                return torch.where(mask.any(-1), filled, torch.zeros_like(filled))
            """
        )
    )
    code = fuzz_masked_max_cli(tmp_path, f"{module}:padded_max_pool", f"{module}:trusted")
    out = capsys.readouterr().out
    assert code == 1 and "reference_mismatch failed" in out and "Semantic" in out


# -------------------------------------------------------------------- the references suite


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("rows_masked_attention", "Semantic"),
        ("filled_masked_max", "Semantic"),
        ("late_residual_layer_norm_residual", "Semantic"),
    ],
)
def test_the_suites_semantic_bugs_say_so(
    suites_report: stress.Report, target: str, kind: str
) -> None:
    found = [
        f
        for f in suites_report.findings_for(f"references.{target}", "fp32")
        if f.check == "reference_mismatch"
    ]
    assert found and kind in found[0].message


@pytest.mark.parametrize(
    "target", ["fused_attention", "masked_max", "masked_mean", "layer_norm_residual"]
)
def test_the_suites_fixed_kernels_pass_in_every_mode(
    suites_report: stress.Report, target: str
) -> None:
    results = [r for r in suites_report.results if r.target == f"references.{target}"]
    assert len(results) == 5 and all(r.status == Status.PASSED for r in results), [
        (r.mode, r.status, r.reason) for r in results
    ]


def test_the_cli_reference_torch_takes_a_function_named_after_the_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the README's `stress fuzz kernels.py:masked_max --reference torch`: the target's name is
    # "kernels.py:masked_max", whose last word is the op
    module = tmp_path / "kernels.py"
    module.write_text("def masked_max(x, mask):\n    return x.masked_fill(~mask, -1e9).amax(-1)\n")
    code = fuzz_masked_max_cli(tmp_path, f"{module}:masked_max", "torch")
    out = capsys.readouterr().out
    assert code == 1 and "reference_mismatch failed" in out and "torch masked_max" in out


def test_a_nan_that_float64_shares_but_the_reference_does_not_names_the_reference() -> None:
    def naive_softmax(x: torch.Tensor) -> torch.Tensor:
        e = x.exp()
        return e / e.sum(-1, keepdim=True)

    report = stress.fuzz(
        naive_softmax,
        x=st.logits(("B", "D")),
        reference="torch",
        modes=("fp32",),
        profile="ci",
        seed=0,
    )
    (finding,) = [f for f in report.findings if f.check == "finite_forward"]
    assert "breaks down even in float64, where the reference torch softmax (float64) gives 1" in (
        finding.message
    )
