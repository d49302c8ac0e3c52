"""Trusted implementations a target is compared with: ``reference=`` on a target.

``reference=my_reference`` (the same signature as the target), ``reference="module:function"``,
or ``reference="torch"``: the PyTorch op whose name the target's name ends with, called through
the adapter below with the target's own arguments by name.

==================================  ==========================================================
name (the target's name ends with)  adapter: the arguments a target must call them
==================================  ==========================================================
``softmax``                         ``(x, dim=-1)`` → ``torch.softmax``
``log_softmax``                     ``(x, dim=-1)`` → ``torch.log_softmax``
``logsumexp``                       ``(x, dim=-1)`` → ``torch.logsumexp``
``layer_norm``                      ``(x, weight=None, bias=None, eps=1e-5)`` → ``F.layer_norm`` over the last dim
``layer_norm_residual``             ``(x, residual, weight=None, bias=None, eps=1e-5)`` → ``F.layer_norm(x + residual)``
``rms_norm``                        ``(x, weight=None, eps=1e-6)`` → ``F.rms_norm`` over the last dim
``normalize``                       ``(x, dim=-1, eps=1e-12)`` → ``F.normalize``
``cosine_similarity``               ``(x, y, dim=-1, eps=1e-8)`` → ``F.cosine_similarity``
``cross_entropy``                   ``(logits, target, label_smoothing=0.0)`` → ``F.cross_entropy``
``attention``                       ``(q, k, v, mask=None, causal=False)`` → ``F.scaled_dot_product_attention`` (``mask``: True = attend)
``masked_max``                      ``(x, mask, dim=-1)`` → the max over ``mask``; 0 where nothing is kept
``masked_mean``                     ``(x, mask, dim=-1)`` → the mean over ``mask``; 0 where nothing is kept
``cdist``                           ``(x, y)`` → ``torch.cdist``
``gelu``, ``silu``                  ``(x)`` → ``F.gelu`` / ``F.silu``
``mse_loss``                        ``(input, target)`` → ``F.mse_loss``
==================================  ==========================================================
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InvalidArgument

__all__ = ["TORCH_REFERENCES", "resolve_reference"]

Tensor = torch.Tensor


def _masked_max(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    filled = x.masked_fill(~mask, -math.inf).amax(dim)
    return torch.where(mask.any(dim), filled, torch.zeros_like(filled))


def _masked_mean(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    kept = mask.to(x.dtype)
    return (x * kept).sum(dim) / kept.sum(dim).clamp_min(1)


def _attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False
) -> Tensor:
    if mask is not None and mask.dim() == q.dim() - 1:
        mask = mask.unsqueeze(-2)  # a padding mask over the keys
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    if mask is not None:  # a query with no key to attend to: 0, not NaN
        out = torch.where(mask.any(-1, keepdim=True), out, torch.zeros_like(out))
    return out


def _layer_norm(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)


def _layer_norm_residual(
    x: Tensor,
    residual: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    return F.layer_norm(x + residual, x.shape[-1:], weight, bias, eps)


def _rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    return F.rms_norm(x, x.shape[-1:], weight, eps)


def _cross_entropy(logits: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing)


# longest names first: "log_softmax" before "softmax", "layer_norm_residual" before "layer_norm"
TORCH_REFERENCES: dict[str, Callable[..., Any]] = {
    "layer_norm_residual": _layer_norm_residual,
    "cosine_similarity": lambda x, y, dim=-1, eps=1e-8: F.cosine_similarity(x, y, dim, eps),
    "cross_entropy": _cross_entropy,
    "log_softmax": lambda x, dim=-1: torch.log_softmax(x, dim),
    "masked_mean": _masked_mean,
    "layer_norm": _layer_norm,
    "masked_max": _masked_max,
    "logsumexp": lambda x, dim=-1: torch.logsumexp(x, dim),
    "normalize": lambda x, dim=-1, eps=1e-12: F.normalize(x, dim=dim, eps=eps),
    "attention": _attention,
    "rms_norm": _rms_norm,
    "mse_loss": lambda input, target: F.mse_loss(input, target),
    "softmax": lambda x, dim=-1: torch.softmax(x, dim),
    "cdist": lambda x, y: torch.cdist(x, y),
    "gelu": lambda x: F.gelu(x),
    "silu": lambda x: F.silu(x),
}


def _parameters(fn: Callable[..., Any]) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def resolve_reference(
    spec: Callable[..., Any] | str, target_name: str, arguments: list[str]
) -> tuple[Callable[..., Any], str]:
    """The reference callable and how to name it in messages."""
    if callable(spec):
        return _callable_with(spec, target_name, arguments), getattr(
            spec, "__qualname__", repr(spec)
        )
    if spec == "torch":
        # "kernels.py:softmax", "pkg.kernels:softmax", "suite::cell" or a qualified name
        name = re.split(r"[.:]", target_name)[-1]
        for op, fn in TORCH_REFERENCES.items():
            if name == op or name.endswith("_" + op):
                accepted = _parameters(fn)
                unknown = [a for a in arguments if a not in accepted]
                if unknown:
                    raise InvalidArgument(
                        f"{target_name}: reference='torch' calls the {op} adapter with ({', '.join(accepted)}); "
                        f"the target's arguments {unknown} are not among them — rename them, or give "
                        "reference=your_function"
                    )
                return fn, f"torch {op}"
        known = ", ".join(sorted(TORCH_REFERENCES))
        raise InvalidArgument(
            f"{target_name}: reference='torch' needs a target whose name ends with a known op ({known}); "
            "give reference=your_function instead"
        )
    from .discovery import load_object

    try:
        fn = load_object(spec)
    except InvalidArgument as e:
        raise InvalidArgument(f"{target_name}: reference={spec!r}: {e}") from None
    if not callable(fn):
        raise InvalidArgument(f"{target_name}: reference={spec!r} is not callable")
    return _callable_with(fn, target_name, arguments), spec


def _callable_with(
    fn: Callable[..., Any], target_name: str, arguments: list[str]
) -> Callable[..., Any]:
    """``fn``, once its signature accepts the target's arguments by name (as it is called)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn  # a builtin without a signature: the call itself will say
    try:
        signature.bind(**dict.fromkeys(arguments))
    except TypeError as e:
        name = getattr(fn, "__qualname__", repr(fn))
        raise InvalidArgument(
            f"{target_name}: reference={name} cannot be called with the target's arguments "
            f"({', '.join(arguments)}): {e}; accepted: ({', '.join(signature.parameters)})"
        ) from None
    return fn
