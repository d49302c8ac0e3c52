"""Helpers shared by the suites (a leading underscore: not collected as a suite)."""

from __future__ import annotations

import contextlib

import torch


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager[None]:
    """Leave autocast: under amp the matmuls of a loss would otherwise run in float16/bfloat16."""
    return torch.autocast(x.device.type, enabled=False)
