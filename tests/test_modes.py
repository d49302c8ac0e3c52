from __future__ import annotations

import pytest
import torch

from stress import InvalidArgument, Mode
from stress.core.modes import DEFAULT_TOLERANCES, MODE_NAMES, dtype_facts, resolve_modes


def test_every_mode_has_a_default_tolerance() -> None:
    assert set(DEFAULT_TOLERANCES) == set(MODE_NAMES)


@pytest.mark.parametrize(
    ("name", "storage", "compute"),
    [
        ("fp32", torch.float32, torch.float32),
        ("fp16", torch.float16, torch.float16),
        ("bf16", torch.bfloat16, torch.bfloat16),
        ("amp-fp16", torch.float32, torch.float16),
        ("amp-bf16", torch.float32, torch.bfloat16),
    ],
)
def test_mode_dtypes(name: str, storage: torch.dtype, compute: torch.dtype) -> None:
    m = Mode(name)
    assert m.storage_dtype == storage
    assert m.compute_dtype == compute


def test_dtype_facts_match_finfo() -> None:
    f = dtype_facts(torch.float16)
    assert f.max == 65504.0
    assert f.tiny == torch.finfo(torch.float16).tiny
    assert f.eps == torch.finfo(torch.float16).eps
    assert f.sqrt_max == pytest.approx(255.94, rel=1e-4)


def test_autocast_mode_runs_matmul_in_low_precision() -> None:
    a = torch.ones(2, 2)
    with Mode("amp-bf16").autocast():
        assert (a @ a).dtype == torch.bfloat16
    with Mode("fp32").autocast():
        assert (a @ a).dtype == torch.float32


def test_resolve_modes_parses_names_and_devices() -> None:
    modes = resolve_modes("fp32, amp-fp16@cpu")
    assert [m.label for m in modes] == ["fp32", "amp-fp16"]


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: Mode("fp8"), "mode='fp8'"),
        (lambda: Mode("fp16", "tpu"), "device='tpu'"),
        (lambda: resolve_modes(["fp32"], device="gpu"), "device='gpu'"),
        (lambda: resolve_modes([]), "empty"),
        (lambda: resolve_modes([16]), "mode names"),  # type: ignore[list-item]
    ],
)
def test_bad_modes_name_the_argument(call, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument, match=r"accepted|empty|mode names") as e:
        call()
    assert needle in str(e.value)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the reason given on a machine without CUDA"
)
def test_cuda_mode_is_skipped_with_a_reason_without_gpu() -> None:
    reason = Mode("fp16", "cuda").unavailable_reason()
    assert reason is not None and "CUDA is not available" in reason


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_autocast_runs_matmul_in_fp16() -> None:
    a = torch.ones(2, 2, device="cuda")
    with Mode("amp-fp16", "cuda").autocast():
        assert (a @ a).dtype == torch.float16
