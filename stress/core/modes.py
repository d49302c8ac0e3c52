"""Precision modes, devices and the one table of dtype facts and default tolerances.

A *mode* says how a target is executed:

========== ================= ================== ===========================
mode       inputs, params    autocast           narrowest compute dtype
========== ================= ================== ===========================
fp32       float32           off                float32
fp16       float16           off                float16
bf16       bfloat16          off                bfloat16
amp-fp16   float32           float16            float16
amp-bf16   float32           bfloat16           bfloat16
========== ================= ================== ===========================

Default tolerances bound the normwise relative error ``max|out - ref| / max(max|ref|, floor)``
against a float64 reference computed on the same rounded inputs, for outputs
(``DEFAULT_TOLERANCES``) and for gradients (``GRADIENT_TOLERANCES``). They are per mode and any
target may override them (``tolerances={"fp16": 3e-2}``, ``gradient_tolerances=...``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import torch

from ..errors import InvalidArgument
from .numerics import DtypeFacts, dtype_facts
from .options import DEVICES, MODE_NAMES
from .validation import check_choice

__all__ = [
    "DEFAULT_TOLERANCES",
    "GRADIENT_TOLERANCES",
    "MODE_NAMES",
    "DtypeFacts",
    "Mode",
    "dtype_facts",
    "resolve_device",
    "resolve_modes",
]


# name: (storage dtype of inputs and parameters, autocast dtype or None)
_MODE_TABLE: dict[str, tuple[torch.dtype, torch.dtype | None]] = {
    "fp32": (torch.float32, None),
    "fp16": (torch.float16, None),
    "bf16": (torch.bfloat16, None),
    "amp-fp16": (torch.float32, torch.float16),
    "amp-bf16": (torch.float32, torch.bfloat16),
}
assert tuple(_MODE_TABLE) == MODE_NAMES

DEFAULT_TOLERANCES: dict[str, float] = {
    "fp32": 1e-4,
    "fp16": 1e-2,
    "bf16": 5e-2,
    "amp-fp16": 1e-2,
    "amp-bf16": 5e-2,
}


# Gradients chain more roundings than outputs. Measured over the stable twins of the test corpus
# (``python benchmarks/corpus_run.py``, 300 examples per mode): the worst float32 gradient error is
# 2.5x the float32 output tolerance, while in the 16-bit modes (whose CPU kernels accumulate in
# float32) it stays below a tenth of theirs. Hence 10x in fp32, 1x elsewhere.
GRADIENT_TOLERANCES: dict[str, float] = {
    "fp32": 1e-3,
    "fp16": 1e-2,
    "bf16": 5e-2,
    "amp-fp16": 1e-2,
    "amp-bf16": 5e-2,
}


def resolve_device(device: str) -> str:
    """Map ``auto`` to ``cuda`` when a GPU is present, else ``cpu``; validate the rest."""
    check_choice("device", device, DEVICES)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass(frozen=True)
class Mode:
    """A precision mode on a device, e.g. ``Mode("amp-bf16", "cpu")``."""

    name: str
    device: str = "cpu"
    storage_dtype: torch.dtype = field(init=False)
    autocast_dtype: torch.dtype | None = field(init=False)

    def __post_init__(self) -> None:
        check_choice("mode", self.name, MODE_NAMES)
        check_choice("device", self.device, ("cpu", "cuda"))
        storage, autocast = _MODE_TABLE[self.name]
        object.__setattr__(self, "storage_dtype", storage)
        object.__setattr__(self, "autocast_dtype", autocast)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The narrowest dtype the computation uses; strategies aim magnitudes at its limits."""
        return self.autocast_dtype or self.storage_dtype

    @property
    def facts(self) -> DtypeFacts:
        return dtype_facts(self.compute_dtype)

    @property
    def label(self) -> str:
        return self.name if self.device == "cpu" else f"{self.name}@{self.device}"

    def unavailable_reason(self) -> str | None:
        """Why this mode cannot run on this machine, or ``None`` when it can."""
        if self.device == "cuda" and not torch.cuda.is_available():
            return "CUDA is not available on this machine (torch.cuda.is_available() is False)"
        if (
            self.device == "cuda"
            and self.compute_dtype == torch.bfloat16
            and not torch.cuda.is_bf16_supported()
        ):
            return f"this GPU ({torch.cuda.get_device_name()}) does not support bfloat16"
        return None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast for amp modes (``torch.autocast`` on the mode's device); a no-op otherwise."""
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device, dtype=self.autocast_dtype):
            yield

    def tolerance(self, overrides: Mapping[str, float] | None = None) -> float:
        """The output tolerance of this mode, or the target's override."""
        if overrides and self.name in overrides:
            return overrides[self.name]
        return DEFAULT_TOLERANCES[self.name]

    def gradient_tolerance(self, overrides: Mapping[str, float] | None = None) -> float:
        if overrides and self.name in overrides:
            return overrides[self.name]
        return GRADIENT_TOLERANCES[self.name]

    def __str__(self) -> str:
        return self.label


def resolve_modes(modes: Iterable[str | Mode] | str, device: str = "cpu") -> list[Mode]:
    """Turn mode names (``"fp16"``, ``"amp-bf16@cuda"``) into ``Mode`` objects on a device."""
    if isinstance(modes, str):
        modes = [m.strip() for m in modes.split(",") if m.strip()]
    resolved = []
    dev = resolve_device(device)
    for m in modes:
        if isinstance(m, Mode):
            resolved.append(m)
            continue
        if not isinstance(m, str):
            raise InvalidArgument(
                f"modes must hold mode names; got {m!r} of type {type(m).__name__}"
            )
        name, _, on = m.partition("@")
        resolved.append(Mode(name, resolve_device(on) if on else dev))
    if not resolved:
        raise InvalidArgument(
            f"modes={modes!r} is empty; accepted names are {', '.join(MODE_NAMES)}"
        )
    return resolved
