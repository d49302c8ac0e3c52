"""The float64 reference stays float64 whatever the code asks for.

A stable implementation often casts on purpose — ``x.float()``, ``.to(torch.float32)``,
``torch.zeros(n, dtype=torch.float32)``, ``softmax(..., dtype=torch.float32)`` — and run as the
reference those casts would quietly make the "float64" result a float32 one, so the float32
mode would compare with itself and read an error of zero. During the reference pass,
:class:`Float64Reference` turns every request for a lower-precision float dtype into float64,
makes float64 the default dtype (for ``torch.tensor(0.1)`` and modules built inside the target),
and records any op that still produced a lower-precision float tensor: such a reference is
*degraded*, and the result says so instead of passing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["Float64Reference"]

_LOW = {
    torch.float16: torch.float64,
    torch.bfloat16: torch.float64,
    torch.float32: torch.float64,
    torch.complex32: torch.complex128,
    torch.complex64: torch.complex128,
}
_LEGACY = {
    "torch.FloatTensor": "torch.DoubleTensor",
    "torch.HalfTensor": "torch.DoubleTensor",
    "torch.BFloat16Tensor": "torch.DoubleTensor",
}
_DOWNCASTS = frozenset({"float", "half", "bfloat16"})


def _widen(value: Any) -> Any:
    if isinstance(value, torch.dtype):
        return _LOW.get(value, value)
    if isinstance(value, str):
        return _LEGACY.get(value, value)
    return value


class Float64Reference(TorchFunctionMode):
    """A ``TorchFunctionMode`` that keeps a computation in float64 and notes what escaped it."""

    def __init__(self) -> None:
        super().__init__()
        self.degraded: str | None = None  # the first op that still made a low-precision float
        self._default: torch.dtype | None = None

    def __enter__(self) -> Float64Reference:
        self._default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        assert self._default is not None
        torch.set_default_dtype(self._default)

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _DOWNCASTS and args and isinstance(args[0], torch.Tensor):
            t = args[0]
            return t.double() if t.is_floating_point() else func(*args, **kwargs)
        if any(isinstance(a, (torch.dtype, str)) for a in args):
            args = tuple(_widen(a) for a in args)
        if kwargs.get("dtype") is not None:
            kwargs["dtype"] = _widen(kwargs["dtype"])
        out = func(*args, **kwargs)
        if self.degraded is None:
            low = _low_precision(out)
            if low is not None:
                self.degraded = f"{name or func} returned {low}"
        return out


def _low_precision(value: Any) -> str | None:
    if isinstance(value, torch.Tensor):
        return str(value.dtype).removeprefix("torch.") if value.dtype in _LOW else None
    if isinstance(value, (tuple, list)):
        return next((d for v in value if (d := _low_precision(v))), None)
    return None
