"""Recipes: the few drawn numbers a value is built from, and how torch materializes them.

Hypothesis never draws tensor elements. It draws a recipe — the shape, a pattern, a log10 scale,
a seed, or a relation to another argument — and the recipe materializes the exact value in
float64 on the CPU. A recipe's ``repr`` reads like a call: ``embeddings(B=2, D=3,
pattern='duplicate_rows', log10_scale=3.0)``, ``near_copy(x, rel=1e-05)``.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from .modes import Mode, dtype_facts

__all__ = [
    "FLOAT_KINDS",
    "PATTERNS",
    "RELATIONS",
    "Example",
    "Recipe",
    "RelatedRecipe",
    "ScalarRecipe",
    "TensorRecipe",
    "ValueRecipe",
]

Shape = tuple[int | str, ...]

# The first pattern of each kind is the plain one that shrinking moves toward.
FLOAT_PATTERNS = (
    "gaussian",
    "zero_rows",
    "duplicate_rows",
    "near_constant_rows",
    "one_hot_rows",
    "outliers",
    "common_offset",
    "boundary",
)
PATTERNS: dict[str, tuple[str, ...]] = {
    "tensors": FLOAT_PATTERNS,
    "embeddings": FLOAT_PATTERNS,
    "activations": FLOAT_PATTERNS,
    "logits": (*FLOAT_PATTERNS, "masked_rows"),
    "probabilities": ("softmax", "one_hot", "uniform", "with_zeros"),
    "masks": ("all_open", "random", "fully_masked_rows", "one_open_per_row", "all_masked"),
    "targets": ("random", "same_class", "last_class", "some_ignored", "all_ignored"),
}
FLOAT_KINDS = frozenset({"tensors", "embeddings", "activations", "logits"})
# How one float argument may be tied to an earlier one of the same shape; "independent" first.
RELATIONS = ("independent", "copy", "near_copy", "scaled_copy", "permuted_rows")


_NOTHING: Mapping[str, Any] = MappingProxyType({})


class Recipe(ABC):
    """What Hypothesis drew for one argument."""

    @abstractmethod
    def materialize(self, mode: Mode, earlier: Mapping[str, Any] = _NOTHING) -> Any:
        """The exact value (float64, bool or int64 tensors on the CPU, or a Python value),
        before rounding to the mode; ``earlier`` holds the arguments materialized before it."""

    def numel(self) -> int:
        return 0

    @abstractmethod
    def __repr__(self) -> str: ...


def format_call(name: str, positional: Sequence[str], keywords: Mapping[str, Any]) -> str:
    parts = list(positional) + [f"{k}={v!r}" for k, v in keywords.items()]
    return f"{name}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class TensorRecipe(Recipe):
    """A tensor described by kind, shape, pattern, log10 scale and seed."""

    kind: str
    shape: tuple[int, ...]
    labels: Shape  # the shape as declared: ints and dimension names
    pattern: str
    log10_scale: float
    seed: int
    min_value: float | None = None
    max_value: float | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def __repr__(self) -> str:
        named = {
            str(lab): n
            for lab, n in zip(self.labels, self.shape, strict=True)
            if isinstance(lab, str)
        }
        positional = [] if len(named) == len(self.shape) else [repr(self.shape)]
        keywords: dict[str, Any] = dict(named)
        if self.pattern != PATTERNS[self.kind][0]:
            keywords["pattern"] = self.pattern
        if self.log10_scale != 0.0:
            keywords["log10_scale"] = self.log10_scale
        keywords.update((k, v) for k, v in self.options if (k, v) != ("dim", -1))
        if self.seed:
            keywords["seed"] = self.seed
        return format_call(self.kind, positional, keywords)

    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def materialize(self, mode: Mode, earlier: Mapping[str, Any] = _NOTHING) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        return MATERIALIZERS[self.kind](self, mode, g)


@dataclass(frozen=True, repr=False)
class RelatedRecipe(Recipe):
    """A float tensor tied to an earlier argument: a copy, a near copy (one ulp to 1e-3
    relative), a scaled copy, or its rows permuted — the coincidences random draws never make."""

    relation: str
    source: str
    base: TensorRecipe  # the shape, domain and kind this argument was declared with
    parameter: float = 0.0  # the relative size of a near copy, the factor of a scaled copy

    def __repr__(self) -> str:
        keywords: dict[str, Any] = {}
        if self.relation == "near_copy":
            keywords["rel"] = float(f"{self.parameter:.3g}")
        elif self.relation == "scaled_copy":
            keywords["factor"] = self.parameter
        return format_call(self.relation, [self.source], keywords)

    def numel(self) -> int:
        return self.base.numel()

    def materialize(self, mode: Mode, earlier: Mapping[str, Any] = _NOTHING) -> torch.Tensor:
        x = earlier[self.source].clone()
        g = torch.Generator().manual_seed(self.base.seed)
        if self.relation == "near_copy":
            signs = torch.randint(2, x.shape, generator=g).double().mul_(2).sub_(1)
            x = x * (1 + self.parameter * signs)
        elif self.relation == "scaled_copy":
            x = x * self.parameter
        elif self.relation == "permuted_rows":
            rows = _rows(x)
            rows.copy_(rows[torch.randperm(rows.shape[0], generator=g)])
        return _clamp(x, self.base, mode)


@dataclass(frozen=True, repr=False)
class ScalarRecipe(Recipe):
    """A Python float such as a temperature; rounded to the mode's dtype when used."""

    kind: str
    value: float

    def __repr__(self) -> str:
        return f"{self.kind}({self.value!r})"

    def materialize(self, mode: Mode, earlier: Mapping[str, Any] = _NOTHING) -> float:
        return self.value


@dataclass(frozen=True, repr=False)
class ValueRecipe(Recipe):
    """A value drawn from a plain Hypothesis strategy or given as a constant."""

    value: Any

    def __repr__(self) -> str:
        return repr(self.value)

    def materialize(self, mode: Mode, earlier: Mapping[str, Any] = _NOTHING) -> Any:
        return self.value


# ------------------------------------------------------------------------- patterns


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A 2-D view: every dimension but the last is a row."""
    return t.reshape(1, -1) if t.dim() <= 1 else t.reshape(-1, t.shape[-1])


def _float_tensor(r: TensorRecipe, mode: Mode, g: torch.Generator) -> torch.Tensor:
    facts = mode.facts
    if mode.autocast_dtype is not None and r.seed % 2:
        # under autocast most ops still compute in the storage dtype (float32): half the
        # near-constant rows and offsets are aimed at its eps instead of the autocast dtype's
        facts = dtype_facts(mode.storage_dtype)
    t = torch.randn(r.shape, generator=g).double()  # float32 sampling is 5x faster than float64
    rows = _rows(t)
    p = r.pattern
    if p == "zero_rows":
        rows[0::2] = 0.0
    elif p == "duplicate_rows":
        n = rows[1::2].shape[0]
        rows[1::2] = rows[0::2][:n]
    elif p == "near_constant_rows":
        # each row is a constant plus relative noise of the dtype's eps: variance ~ (c·eps)²
        rows.mul_(facts.eps).add_(1.0)
    elif p == "one_hot_rows":
        rows.zero_()
        idx = torch.arange(rows.shape[0]) % max(rows.shape[1], 1)
        if rows.numel():
            rows[torch.arange(rows.shape[0]), idx] = 1.0
    elif p == "outliers":
        flat = t.view(-1)
        flat[:: max(1, flat.numel() // 3)] *= facts.sqrt_max
    elif p == "common_offset":
        # an offset 1/(4·eps) times the spread, so differences cancel to a few bits — held
        # inside the domain (9/10 of its edge), where a clamp would flatten it to a constant
        offset = 0.25 / facts.eps
        edge = r.max_value if r.max_value is not None and r.max_value > 0 else None
        if edge is not None:
            offset = min(offset, 0.9 * edge / 10.0**r.log10_scale)
        t.add_(offset)
    elif p == "boundary":
        choices = torch.tensor(_boundary_values(r.min_value, r.max_value), dtype=torch.float64)
        t = choices[torch.randint(len(choices), r.shape, generator=g)]
        return _clamp(t, r, mode)  # boundaries are exact: no scale
    t.mul_(10.0**r.log10_scale)
    if p == "masked_rows":
        _rows(t)[0::2] = torch.finfo(mode.storage_dtype).min
    return _clamp(t, r, mode)


def _boundary_values(lo: float | None, hi: float | None) -> list[float]:
    candidates = [0.0, 1.0, -1.0] + [v for v in (lo, hi) if v is not None]
    inside = [v for v in candidates if (lo is None or v >= lo) and (hi is None or v <= hi)]
    return sorted(set(inside)) or [lo if lo is not None else 0.0]


def _clamp(t: torch.Tensor, r: TensorRecipe, mode: Mode) -> torch.Tensor:
    big = torch.finfo(mode.storage_dtype).max
    lo = -big if r.min_value is None else max(r.min_value, -big)
    hi = big if r.max_value is None else min(r.max_value, big)
    return t.clamp_(lo, hi)


def _probabilities(r: TensorRecipe, mode: Mode, g: torch.Generator) -> torch.Tensor:
    dim = dict(r.options)["dim"]
    t = torch.randn(r.shape, generator=g).double()
    if r.pattern == "uniform":
        return torch.full_like(t, 1.0 / t.shape[dim])
    if r.pattern == "one_hot":
        idx = t.argmax(dim=dim, keepdim=True)
        return torch.zeros_like(t).scatter_(dim, idx, 1.0)
    p = torch.softmax(t * 10.0**r.log10_scale, dim=dim)
    if r.pattern == "with_zeros":
        p = p * (torch.rand(t.shape, generator=g, dtype=torch.float64) > 0.5)
        p.select(dim, 0).add_((p.sum(dim) == 0).double())  # keep every row a distribution
        p = p / p.sum(dim, keepdim=True)
    return p


def _masks(r: TensorRecipe, mode: Mode, g: torch.Generator) -> torch.Tensor:
    p = r.pattern
    if p == "all_open":
        return torch.ones(r.shape, dtype=torch.bool)
    if p == "all_masked":
        return torch.zeros(r.shape, dtype=torch.bool)
    m = torch.rand(r.shape, generator=g) > 0.5
    rows = _rows(m)
    if p == "fully_masked_rows":
        rows[0::2] = False
    elif p == "one_open_per_row":
        rows.zero_()
        if rows.numel():
            cols = torch.randint(rows.shape[1], (rows.shape[0],), generator=g)
            rows[torch.arange(rows.shape[0]), cols] = True
    return m


def _targets(r: TensorRecipe, mode: Mode, g: torch.Generator) -> torch.Tensor:
    opts = dict(r.options)
    c, ignore = int(opts["num_classes"]), int(opts.get("ignore_index", -100))
    p = r.pattern
    if p == "same_class":
        return torch.zeros(r.shape, dtype=torch.int64)
    if p == "last_class":
        return torch.full(r.shape, c - 1, dtype=torch.int64)
    t = torch.randint(c, r.shape, generator=g)
    if p == "all_ignored":
        t.fill_(ignore)
    elif p == "some_ignored":
        t.view(-1)[0::2] = ignore
    return t


MATERIALIZERS: dict[str, Callable[[TensorRecipe, Mode, torch.Generator], torch.Tensor]] = {
    "tensors": _float_tensor,
    "embeddings": _float_tensor,
    "activations": _float_tensor,
    "logits": _float_tensor,
    "probabilities": _probabilities,
    "masks": _masks,
    "targets": _targets,
}


# ------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class Example:
    """One drawn example: the shared dimensions and a recipe per argument, in call order."""

    dims: dict[str, int]
    recipes: dict[str, Recipe]

    def __repr__(self) -> str:
        return ", ".join(f"{k}={r!r}" for k, r in self.recipes.items())

    def numel(self) -> int:
        """Elements of every tensor argument together: what the memory budget is checked on."""
        return sum(r.numel() for r in self.recipes.values())

    def materialize(self, mode: Mode) -> dict[str, Any]:
        """Every argument's exact value, before rounding; related arguments after their source."""
        values: dict[str, Any] = {}
        for name, recipe in self.recipes.items():
            values[name] = recipe.materialize(mode, values)
        return values

    def describe(self) -> dict[str, str]:
        return {k: repr(r) for k, r in self.recipes.items()}


def stable_seed(*parts: object) -> int:
    """A seed that is the same on every machine and every run for the same parts."""
    return zlib.crc32(repr(parts).encode())
