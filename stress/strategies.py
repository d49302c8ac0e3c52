"""Adversarial input strategies built from recipes.

Hypothesis never draws tensor elements. It draws a *recipe*: the shape (symbolic dimensions
are drawn once per example and shared between arguments), a pattern, a log-magnitude and a
seed; torch then materializes the tensor. Drawing therefore costs the same for 2×3 and 64×512,
shrinking moves toward small shapes, the plain ``gaussian`` pattern and unit scale, and a
counterexample reads like a call: ``embeddings(B=2, D=3, pattern='duplicate_rows',
log10_scale=3.0)``.

Magnitudes are aimed at the mode's compute dtype: the log-scale anchors are the dtype's
``sqrt(max)``, ``max``, smallest normal and smallest subnormal, so fp16 is pushed toward 65504
and bf16 toward its own limits. Every tensor is clamped to the declared domain
(``min_value``/``max_value``) and to the finite range, then rounded to the mode's dtype before
anything sees it.
"""

from __future__ import annotations

import functools
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import hypothesis.strategies as hst
import torch
from hypothesis.strategies import SearchStrategy

from .errors import InvalidArgument
from .modes import Mode, dtype_facts

__all__ = [
    "DEFAULT_DIM_RANGE",
    "ArgumentStrategy",
    "Recipe",
    "activations",
    "embeddings",
    "from_name",
    "logits",
    "masks",
    "parse",
    "probabilities",
    "scalars",
    "targets",
    "temperatures",
    "tensors",
]

DEFAULT_DIM_RANGE: tuple[int, int] = (1, 16)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Shape = tuple[int | str, ...]


# --------------------------------------------------------------------------- recipes


class Recipe(ABC):
    """What Hypothesis drew for one argument; ``materialize`` turns it into the exact value."""

    @abstractmethod
    def materialize(self, mode: Mode) -> Any:
        """The value in float64 (or bool/int64) on the CPU, before rounding to the mode."""

    @abstractmethod
    def __repr__(self) -> str: ...


def _format_args(positional: Sequence[str], keywords: Mapping[str, Any]) -> str:
    parts = list(positional) + [f"{k}={v!r}" for k, v in keywords.items()]
    return ", ".join(parts)


@dataclass(frozen=True, repr=False)
class TensorRecipe(Recipe):
    """A tensor described by kind, shape, pattern, log10 scale and seed."""

    kind: str
    shape: tuple[int, ...]
    labels: Shape  # the shape as declared: ints and dimension names
    pattern: str
    log10_scale: float
    seed: int
    min_value: float | None
    max_value: float | None
    options: tuple[tuple[str, Any], ...] = ()

    def __repr__(self) -> str:
        named = {
            str(lab): n
            for lab, n in zip(self.labels, self.shape, strict=True)
            if isinstance(lab, str)
        }
        positional = [] if len(named) == len(self.shape) else [repr(self.shape)]
        keywords: dict[str, Any] = dict(named)
        if self.pattern != _PATTERNS[self.kind][0]:
            keywords["pattern"] = self.pattern
        if self.log10_scale != 0.0:
            keywords["log10_scale"] = self.log10_scale
        keywords.update((k, v) for k, v in self.options if (k, v) != ("dim", -1))
        if self.seed:
            keywords["seed"] = self.seed
        return f"{self.kind}({_format_args(positional, keywords)})"

    def materialize(self, mode: Mode) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        return _MATERIALIZERS[self.kind](self, mode, g)


@dataclass(frozen=True, repr=False)
class ScalarRecipe(Recipe):
    """A Python float such as a temperature, rounded to the mode's dtype when used."""

    kind: str
    value: float

    def __repr__(self) -> str:
        return f"{self.kind}({self.value!r})"

    def materialize(self, mode: Mode) -> float:
        return self.value


@dataclass(frozen=True, repr=False)
class ValueRecipe(Recipe):
    """A value drawn from a plain Hypothesis strategy or given as a constant."""

    value: Any

    def __repr__(self) -> str:
        return repr(self.value)

    def materialize(self, mode: Mode) -> Any:
        return self.value


# ------------------------------------------------------------------------- patterns
# The first pattern of each kind is the plain one that shrinking moves toward.

_FLOAT_PATTERNS = (
    "gaussian",
    "zero_rows",
    "duplicate_rows",
    "near_constant_rows",
    "one_hot_rows",
    "outliers",
    "common_offset",
    "boundary",
)
_PATTERNS: dict[str, tuple[str, ...]] = {
    "tensors": _FLOAT_PATTERNS,
    "embeddings": _FLOAT_PATTERNS,
    "activations": _FLOAT_PATTERNS,
    "logits": (*_FLOAT_PATTERNS, "masked_rows"),
    "probabilities": ("softmax", "one_hot", "uniform", "with_zeros"),
    "masks": ("all_open", "random", "fully_masked_rows", "one_open_per_row", "all_masked"),
    "targets": ("random", "same_class", "last_class", "some_ignored", "all_ignored"),
}


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A 2-D view: every dimension but the last is a row."""
    return t.reshape(1, -1) if t.dim() <= 1 else t.reshape(-1, t.shape[-1])


def _float_tensor(r: TensorRecipe, mode: Mode, g: torch.Generator) -> torch.Tensor:
    facts = mode.facts
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
        # an offset 1/(4·eps) times the spread: differences cancel to a few bits
        t.add_(0.25 / facts.eps)
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


_MATERIALIZERS: dict[str, Callable[[TensorRecipe, Mode, torch.Generator], torch.Tensor]] = {
    "tensors": _float_tensor,
    "embeddings": _float_tensor,
    "activations": _float_tensor,
    "logits": _float_tensor,
    "probabilities": _probabilities,
    "masks": _masks,
    "targets": _targets,
}


# ----------------------------------------------------------------- argument strategies


class ArgumentStrategy(ABC):
    """Describes one argument of a target; draws a recipe once dimensions and mode are known.

    ``draw`` only draws from strategies built once and cached, so an example costs the same
    whatever its shape.
    """

    dim_names: frozenset[str] = frozenset()

    @abstractmethod
    def draw(self, draw: hst.DrawFn, dims: Mapping[str, int], mode: Mode) -> Recipe: ...

    def recipes(self, dims: Mapping[str, int], mode: Mode) -> SearchStrategy[Recipe]:
        """The recipes of this argument as a Hypothesis strategy (for use in your own tests)."""
        return hst.composite(lambda d: self.draw(d, dims, mode))()


def _check_shape(kind: str, shape: object) -> Shape:
    if isinstance(shape, (int, str)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise InvalidArgument(
            f"{kind}(shape={shape!r}): shape must be a tuple of ints and dimension names"
        )
    for d in shape:
        ok_int = isinstance(d, int) and not isinstance(d, bool) and d >= 0
        if not ok_int and not (isinstance(d, str) and _NAME.match(d)):
            raise InvalidArgument(
                f"{kind}(shape={tuple(shape)!r}): each dimension must be an int >= 0 or a "
                f"name like 'B'; got {d!r}"
            )
    return tuple(shape)


def _check_bounds(kind: str, min_value: float | None, max_value: float | None) -> None:
    for name, v in (("min_value", min_value), ("max_value", max_value)):
        if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise InvalidArgument(f"{kind}({name}={v!r}): must be a finite number or None")
    if min_value is not None and max_value is not None and min_value > max_value:
        raise InvalidArgument(
            f"{kind}: cannot have min_value={min_value!r} > max_value={max_value!r}"
        )


@functools.lru_cache(maxsize=256)
def _log10_scales(dtype: torch.dtype, lo: float | None, hi: float | None) -> SearchStrategy[float]:
    """Unit scale first (what shrinking reaches), then the dtype's anchors, then anything between."""
    f = dtype_facts(dtype)
    top = math.log10(f.max)
    bounds = [abs(v) for v in (lo, hi) if v is not None]
    if bounds:
        top = min(top, math.log10(max(bounds)) + 1.0) if max(bounds) > 0 else 0.0
    bottom = math.log10(f.smallest_subnormal)
    anchors = [math.log10(f.sqrt_max), math.log10(f.max), math.log10(f.tiny), bottom]
    anchors = sorted({round(a, 2) for a in anchors if a <= top})
    ranged = hst.floats(min_value=bottom, max_value=top).map(lambda v: round(v, 2))
    return (
        hst.one_of(hst.just(0.0), hst.sampled_from(anchors), ranged) if anchors else hst.just(0.0)
    )


_SEEDS = hst.integers(0, 2**31 - 1)


@dataclass(frozen=True, repr=False)
class TensorStrategy(ArgumentStrategy):
    kind: str
    shape: Shape
    min_value: float | None = None
    max_value: float | None = None
    options: tuple[tuple[str, Any], ...] = ()
    call: str = ""
    dim_names: frozenset[str] = field(default=frozenset(), init=False)
    patterns: SearchStrategy[str] = field(init=False)

    _scaled_kinds: ClassVar[frozenset[str]] = frozenset(
        {"tensors", "embeddings", "activations", "logits", "probabilities"}
    )

    def __post_init__(self) -> None:
        names = {d for d in self.shape if isinstance(d, str)}
        names |= {v for _, v in self.options if isinstance(v, str) and _NAME.match(v)}
        object.__setattr__(self, "dim_names", frozenset(names))
        patterns = _PATTERNS[self.kind]
        if "ignore_index" not in dict(self.options):
            patterns = tuple(p for p in patterns if "ignored" not in p)
        object.__setattr__(self, "patterns", hst.sampled_from(patterns))

    def __repr__(self) -> str:
        return self.call

    def draw(self, draw: hst.DrawFn, dims: Mapping[str, int], mode: Mode) -> Recipe:
        shape = tuple(dims[d] if isinstance(d, str) else d for d in self.shape)
        options = tuple(
            (k, dims[v] if k == "num_classes" and isinstance(v, str) else v)
            for k, v in self.options
        )
        scaled = self.kind in self._scaled_kinds
        return TensorRecipe(
            kind=self.kind,
            shape=shape,
            labels=self.shape,
            pattern=draw(self.patterns),
            log10_scale=draw(_log10_scales(mode.compute_dtype, self.min_value, self.max_value))
            if scaled
            else 0.0,
            seed=draw(_SEEDS),
            min_value=self.min_value,
            max_value=self.max_value,
            options=options,
        )


@dataclass(frozen=True, repr=False)
class ScalarStrategy(ArgumentStrategy):
    kind: str
    min_value: float
    max_value: float
    log: bool
    call: str
    values: SearchStrategy[float] = field(init=False)

    def __post_init__(self) -> None:
        lo, hi = self.min_value, self.max_value
        simplest = min(max(1.0 if self.log else 0.0, lo), hi)
        if self.log:
            body = hst.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0**e)
        else:
            body = hst.floats(lo, hi)
        rounded = body.map(lambda v: min(max(float(f"{v:.3g}"), lo), hi))
        values = hst.one_of(hst.just(simplest), hst.sampled_from(sorted({lo, hi})), rounded)
        object.__setattr__(self, "values", values)

    def __repr__(self) -> str:
        return self.call

    def draw(self, draw: hst.DrawFn, dims: Mapping[str, int], mode: Mode) -> Recipe:
        return ScalarRecipe(self.kind, draw(self.values))


@dataclass(frozen=True, repr=False)
class WrappedStrategy(ArgumentStrategy):
    """A plain Hypothesis strategy (or a constant) used as an argument."""

    strategy: SearchStrategy[Any]

    def __repr__(self) -> str:
        return repr(self.strategy)

    def draw(self, draw: hst.DrawFn, dims: Mapping[str, int], mode: Mode) -> Recipe:
        return ValueRecipe(draw(self.strategy))


def as_argument_strategy(name: str, value: object) -> ArgumentStrategy:
    """Accept a torch-stress strategy, a Hypothesis strategy, or a constant for argument ``name``."""
    if isinstance(value, ArgumentStrategy):
        return value
    if isinstance(value, SearchStrategy):
        return WrappedStrategy(value)
    if callable(value) and getattr(value, "__module__", "") == __name__:
        builder = getattr(value, "__name__", "strategy")
        raise InvalidArgument(f"{name}={builder}: call the strategy, e.g. {name}={builder}(...)")
    return WrappedStrategy(hst.just(value))


# --------------------------------------------------------------------- public builders


def _call(kind: str, shape: Shape | None, **kw: Any) -> str:
    head = [repr(shape)] if shape is not None else []
    return f"{kind}({_format_args(head, {k: v for k, v in kw.items() if v is not None})})"


def _tensor_builder(kind: str, doc: str) -> Callable[..., TensorStrategy]:
    def build(
        shape: Shape, *, min_value: float | None = None, max_value: float | None = None
    ) -> TensorStrategy:
        shp = _check_shape(kind, shape)
        _check_bounds(kind, min_value, max_value)
        call = _call(kind, shp, min_value=min_value, max_value=max_value)
        return TensorStrategy(kind, shp, min_value, max_value, call=call)

    build.__name__ = build.__qualname__ = kind
    build.__doc__ = doc + f"\n\nPatterns, simplest first: {', '.join(_PATTERNS[kind])}."
    return build


tensors = _tensor_builder(
    "tensors", "Floating tensors of any role, over the whole range of the mode's dtype."
)
logits = _tensor_builder(
    "logits",
    "Unnormalized scores: saturated one-hot rows, large offsets, rows masked at ``finfo.min``.",
)
embeddings = _tensor_builder(
    "embeddings",
    "Row vectors: zero rows, duplicate rows (distance 0), outliers, huge and tiny norms.",
)
activations = _tensor_builder(
    "activations",
    "Inputs of normalization layers: near-constant rows (variance ~ eps), large common offsets.",
)


def probabilities(
    shape: Shape, *, dim: int = -1, min_value: float | None = None, max_value: float | None = None
) -> TensorStrategy:
    """Distributions along ``dim``: softmax rows from flat to saturated, exact one-hot, exact zeros."""
    shp = _check_shape("probabilities", shape)
    if not isinstance(dim, int) or not -len(shp) <= dim < max(len(shp), 1):
        raise InvalidArgument(
            f"probabilities(dim={dim!r}): must index a dimension of shape={shp!r}"
        )
    _check_bounds("probabilities", min_value, max_value)
    lo, hi = min_value, max_value
    if (lo is not None and lo < 0) or (hi is not None and hi > 1):
        raise InvalidArgument(
            f"probabilities: min_value={lo!r}, max_value={hi!r} must lie in [0, 1]"
        )
    call = _call("probabilities", shp, dim=dim if dim != -1 else None, min_value=lo, max_value=hi)
    return TensorStrategy("probabilities", shp, lo, hi, options=(("dim", dim),), call=call)


def masks(shape: Shape) -> TensorStrategy:
    """Boolean masks, ``True`` = keep: all open, random, fully masked rows, all masked."""
    shp = _check_shape("masks", shape)
    return TensorStrategy("masks", shp, call=_call("masks", shp))


def targets(
    shape: Shape, *, num_classes: int | str, ignore_index: int | None = None
) -> TensorStrategy:
    """Class indices in ``[0, num_classes)``; ``num_classes`` may be a dimension name shared with logits.

    With ``ignore_index`` set, some or all targets take that value.
    """
    shp = _check_shape("targets", shape)
    ok = (
        isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes >= 1
    ) or (isinstance(num_classes, str) and _NAME.match(num_classes))
    if not ok:
        raise InvalidArgument(
            f"targets(num_classes={num_classes!r}): must be an int >= 1 or a dimension name like 'C'"
        )
    if ignore_index is not None and not isinstance(ignore_index, int):
        raise InvalidArgument(f"targets(ignore_index={ignore_index!r}): must be an int or None")
    opts: tuple[tuple[str, Any], ...] = (("num_classes", num_classes),)
    if ignore_index is not None:
        opts += (("ignore_index", ignore_index),)
    call = _call("targets", shp, num_classes=num_classes, ignore_index=ignore_index)
    return TensorStrategy("targets", shp, options=opts, call=call)


def scalars(min_value: float, max_value: float, *, log: bool = False) -> ScalarStrategy:
    """Python floats in ``[min_value, max_value]``, log-uniform with ``log=True``; both ends drawn on purpose."""
    _check_bounds("scalars", min_value, max_value)
    if min_value is None or max_value is None:
        raise InvalidArgument("scalars: min_value and max_value are required")
    if log and min_value <= 0:
        raise InvalidArgument(f"scalars(log=True) needs min_value > 0; got min_value={min_value!r}")
    call = _call("scalars", None, min_value=min_value, max_value=max_value, log=log or None)
    return ScalarStrategy("scalars", float(min_value), float(max_value), log, call)


def temperatures(min_value: float = 0.01, max_value: float = 1.0) -> ScalarStrategy:
    """Softmax temperatures (or any smoothing scale), log-uniform, with ``min_value`` drawn on purpose."""
    _check_bounds("temperatures", min_value, max_value)
    if min_value <= 0:
        raise InvalidArgument(f"temperatures(min_value={min_value!r}): must be > 0")
    call = _call("temperatures", None, min_value=min_value, max_value=max_value)
    return ScalarStrategy("temperatures", float(min_value), float(max_value), True, call)


# ------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class Example:
    """One drawn example: the shared dimensions and a recipe per argument."""

    dims: dict[str, int]
    recipes: dict[str, Recipe]

    def __repr__(self) -> str:
        return ", ".join(f"{k}={r!r}" for k, r in self.recipes.items())


def examples(
    arguments: Mapping[str, ArgumentStrategy],
    mode: Mode,
    dims: Mapping[str, tuple[int, int]] | None = None,
) -> SearchStrategy[Example]:
    """Draw every dimension name once, then a recipe per argument."""
    ranges = resolve_dims(arguments, dims)
    sizes = {n: hst.integers(*ranges[n]) for n in sorted(ranges)}

    @hst.composite
    def draw_example(draw: hst.DrawFn) -> Example:
        drawn = {n: draw(s) for n, s in sizes.items()}
        recipes = {name: a.draw(draw, drawn, mode) for name, a in arguments.items()}
        return Example(drawn, recipes)

    return draw_example()


def resolve_dims(
    arguments: Mapping[str, ArgumentStrategy], dims: Mapping[str, tuple[int, int]] | None
) -> dict[str, tuple[int, int]]:
    """The size range of every dimension name, with ``dims`` overriding ``DEFAULT_DIM_RANGE``."""
    used = set().union(*(a.dim_names for a in arguments.values())) if arguments else set()
    dims = dict(dims or {})
    unknown = set(dims) - used
    if unknown:
        raise InvalidArgument(
            f"dims={dims!r} names {sorted(unknown)} which no argument uses; names in use: {sorted(used)}"
        )
    ranges = {}
    for n in used:
        rng = dims.get(n, DEFAULT_DIM_RANGE)
        if isinstance(rng, int):
            rng = (rng, rng)
        ok = (
            isinstance(rng, tuple)
            and len(rng) == 2
            and all(isinstance(v, int) for v in rng)
            and 0 <= rng[0] <= rng[1]
        )
        if not ok:
            raise InvalidArgument(
                f"dims[{n!r}]={rng!r}: must be an int or a (min, max) pair of ints, 0 <= min <= max"
            )
        ranges[n] = rng
    return ranges


# -------------------------------------------------------------- inference from names

_BY_NAME: tuple[tuple[str, Callable[[], ArgumentStrategy]], ...] = (
    (r"logits?|scores?|preds?|predictions?|outputs?", lambda: logits(("B", "C"))),
    (r"targets?|labels?|classes|y_true", lambda: targets(("B",), num_classes="C")),
    (r"masks?|attn_mask|attention_mask|padding_mask", lambda: masks(("B", "C"))),
    (r"probs?|probabilities|p|q|dist|distribution", lambda: probabilities(("B", "C"))),
    (r"temps?|temperature|tau|gamma|sigma|beta", lambda: temperatures(0.01, 1.0)),
    (r"eps|epsilon", lambda: scalars(1e-12, 1e-3, log=True)),
    (
        r"x|y|z|a|b|u|v|emb\w*|feat\w*|anchor|positive|negative|query|key|value|q_\w+|k_\w+|queries|keys|values",
        lambda: embeddings(("B", "D")),
    ),
    (r"inputs?|hidden\w*|act\w*|h|features", lambda: activations(("B", "D"))),
)


def from_name(name: str) -> ArgumentStrategy:
    """Guess a strategy from a parameter's name (``logits``, ``targets``, ``temp``, ``x`` ...).

    Used by ``stress fuzz`` when no strategy is given; shapes share the names ``B``, ``C``, ``D``.
    """
    for pattern, build in _BY_NAME:
        if re.fullmatch(pattern, name, flags=re.IGNORECASE):
            return build()
    known = "logits, targets, mask, probs, temp, eps, x/y/emb*, input/hidden*"
    raise InvalidArgument(
        f'cannot infer a strategy for parameter {name!r}; give one with --arg {name}=\'tensors(("B", "D"))\'. '
        f"Names understood: {known}"
    )


def parse(expression: str) -> ArgumentStrategy:
    """Evaluate a strategy expression such as ``embeddings(("B", "D"), max_value=10)``.

    Only this module's public builders and literals are in scope.
    """
    scope: dict[str, Any] = {n: globals()[n] for n in __all__ if n[0].islower()}
    try:
        value = eval(expression, {"__builtins__": {}}, scope)
    except InvalidArgument:
        raise
    except Exception as e:  # noqa: BLE001 - any mistake in the expression is a usage error
        builders = ", ".join(n for n in __all__ if n[0].islower())
        raise InvalidArgument(
            f"cannot parse strategy {expression!r} ({type(e).__name__}: {e}); builders are {builders}"
        ) from None
    if not isinstance(value, ArgumentStrategy):
        raise InvalidArgument(f"strategy {expression!r} gave {value!r}, not a strategy")
    return value
