"""Adversarial input strategies (``stress.st``): each argument of a target is described by one.

Hypothesis never draws tensor elements: it draws a recipe (:mod:`stress.core.recipes`) — the
shape (dimension names are drawn once per example and shared between arguments), a pattern, a
log10 scale and a seed — and torch materializes the tensor, so drawing costs the same for 2×3
and 64×512 and a counterexample reads like a call: ``embeddings(B=2, D=3,
pattern='duplicate_rows', log10_scale=3.0)``.

Magnitudes are aimed at the mode's compute dtype: the scale is unit, one of the dtype's anchors
(``sqrt(max)``, ``max``, smallest normal, smallest subnormal) or anything between, so float16 is
pushed toward 65504 and bfloat16 toward its own limits. Every tensor is clamped to its declared
domain (``min_value``/``max_value``) and to the finite range, then rounded to the mode's dtype.

A float argument with the same declared shape as an earlier one is sometimes drawn *tied* to it
— a copy, a near copy (one ulp to 1e-3 relative), a scaled copy, or a row permutation — so the
coincidences of real data (a positive pair, a vector compared with itself) are reached on purpose.
"""

from __future__ import annotations

import functools
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as hst
import torch
from hypothesis.strategies import SearchStrategy

from ..errors import InvalidArgument
from . import validation as v
from .modes import Mode, dtype_facts
from .recipes import (
    FLOAT_KINDS,
    PATTERNS,
    RELATIONS,
    Example,
    Recipe,
    RelatedRecipe,
    ScalarRecipe,
    TensorRecipe,
    ValueRecipe,
    format_call,
)

__all__ = [
    "DEFAULT_DIM_RANGE",
    "ArgumentStrategy",
    "activations",
    "as_argument_strategy",
    "embeddings",
    "examples",
    "from_name",
    "logits",
    "masks",
    "parse",
    "probabilities",
    "resolve_dims",
    "scalars",
    "targets",
    "temperatures",
    "tensors",
]

DEFAULT_DIM_RANGE: tuple[int, int] = (1, 16)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Shape = tuple[int | str, ...]


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


@functools.lru_cache(maxsize=256)
def _log10_scales(dtype: torch.dtype, lo: float | None, hi: float | None) -> SearchStrategy[float]:
    """Unit scale first (what shrinking reaches), then the dtype's anchors, then 0.1-decade grids.

    One ``sampled_from`` draw: unit scale a fifth of the time, the anchors (``sqrt(max)``,
    ``max``, smallest normal and subnormal) a fifth, the moderate decades from 1e-3 up to the
    domain's edge — where exp overflows and squares leave the dtype — two fifths, and the whole
    range down to the smallest subnormal a fifth. Shrinking an index moves from the grids
    through the anchors to unit scale.
    """
    f = dtype_facts(dtype)
    top = math.log10(f.max)
    bounds = [abs(x) for x in (lo, hi) if x is not None]
    if bounds:
        top = min(top, math.log10(max(bounds)) + 1.0) if max(bounds) > 0 else 0.0
    bottom = math.log10(f.smallest_subnormal)
    anchors = [math.log10(f.sqrt_max), math.log10(f.max), math.log10(f.tiny), bottom]
    anchors = sorted({round(a, 2) for a in anchors if a <= top})
    if not anchors:
        return hst.just(0.0)
    full = [round(bottom + i / 10, 1) for i in range(int((top - bottom) * 10) + 1)]
    moderate = [x for x in full if x >= -3.0] or full
    n = len(full)
    return hst.sampled_from(
        [0.0] * n
        + anchors * max(1, n // len(anchors))
        + moderate * max(1, 2 * n // len(moderate))
        + full
    )


_SEEDS = hst.integers(0, 2**31 - 1)
# "independent" 60% of the time; the four relations share the rest; shrinking moves to index 0
_RELATION_INDEX = hst.integers(0, 9)
_SCALE_FACTORS = hst.sampled_from([-1.0, 2.0, 0.5, 10.0, 0.1, 1e3, 1e-3])


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

    def __post_init__(self) -> None:
        names = {d for d in self.shape if isinstance(d, str)}
        names |= {x for _, x in self.options if isinstance(x, str) and _NAME.match(x)}
        object.__setattr__(self, "dim_names", frozenset(names))
        patterns = PATTERNS[self.kind]
        if "ignore_index" not in dict(self.options):
            patterns = tuple(p for p in patterns if "ignored" not in p)
        object.__setattr__(self, "patterns", hst.sampled_from(patterns))

    def __repr__(self) -> str:
        return self.call

    @property
    def scaled(self) -> bool:
        return self.kind in FLOAT_KINDS or self.kind == "probabilities"

    def recipe(
        self, dims: Mapping[str, int], *, pattern: str, log10_scale: float, seed: int
    ) -> TensorRecipe:
        """The recipe of given pattern, scale and seed at the sizes ``dims``."""
        shape = tuple(dims[d] if isinstance(d, str) else d for d in self.shape)
        options = tuple(
            (k, dims[x] if k == "num_classes" and isinstance(x, str) else x)
            for k, x in self.options
        )
        return TensorRecipe(
            self.kind,
            shape,
            self.shape,
            pattern,
            log10_scale if self.scaled else 0.0,
            seed,
            self.min_value,
            self.max_value,
            options,
        )

    def draw(self, draw: hst.DrawFn, dims: Mapping[str, int], mode: Mode) -> Recipe:
        scale = (
            draw(_log10_scales(mode.compute_dtype, self.min_value, self.max_value))
            if self.scaled
            else 0.0
        )
        return self.recipe(dims, pattern=draw(self.patterns), log10_scale=scale, seed=draw(_SEEDS))

    def draw_related(
        self, draw: hst.DrawFn, base: TensorRecipe, source: str, mode: Mode
    ) -> RelatedRecipe | None:
        """Maybe tie this argument to the earlier argument ``source`` of the same shape."""
        index = draw(_RELATION_INDEX)
        if index < 6:
            return None
        relation = RELATIONS[index - 5]
        parameter = 0.0
        if relation == "near_copy":  # one ulp of the mode's dtype (what shrinking reaches) .. 1e-3
            eps = mode.facts.eps
            quarter_decades = draw(hst.integers(0, max(0, round(4 * math.log10(1e-3 / eps)))))
            parameter = eps * 10.0 ** (quarter_decades / 4)
        elif relation == "scaled_copy":
            parameter = draw(_SCALE_FACTORS)
        return RelatedRecipe(relation, source, base, parameter)


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
        rounded = body.map(lambda x: min(max(float(f"{x:.3g}"), lo), hi))
        values = hst.one_of(hst.just(simplest), hst.sampled_from(sorted({lo, hi})), rounded)
        object.__setattr__(self, "values", values)

    def __repr__(self) -> str:
        return self.call

    def recipe(self, value: float) -> ScalarRecipe:
        return ScalarRecipe(self.kind, value)

    def draw(self, draw: hst.DrawFn, dims: Mapping[str, int], mode: Mode) -> Recipe:
        return self.recipe(draw(self.values))


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


def _float_strategy(
    kind: str, shape: Shape, min_value: float | None, max_value: float | None
) -> TensorStrategy:
    shp = _check_shape(kind, shape)
    v.check_range(kind, min_value, max_value)
    call = format_call(
        kind,
        [repr(shp)],
        {k: x for k, x in (("min_value", min_value), ("max_value", max_value)) if x is not None},
    )
    return TensorStrategy(kind, shp, min_value, max_value, call=call)


def tensors(
    shape: Shape, *, min_value: float | None = None, max_value: float | None = None
) -> TensorStrategy:
    """Floating tensors of any role, over the whole range of the mode's dtype.

    ``shape`` holds ints and dimension names (``("B", "D")``); a name takes one size per
    example, shared by every argument that uses it. ``min_value``/``max_value`` bound the
    domain; the patterns stay inside it. Patterns, simplest first: gaussian, zero_rows,
    duplicate_rows, near_constant_rows, one_hot_rows, outliers, common_offset, boundary.

    >>> st.tensors(("B", "D"), min_value=0, max_value=1)
    tensors(('B', 'D'), min_value=0, max_value=1)
    """
    return _float_strategy("tensors", shape, min_value, max_value)


def logits(
    shape: Shape, *, min_value: float | None = None, max_value: float | None = None
) -> TensorStrategy:
    """Unnormalized scores: the float patterns of :func:`tensors`, plus rows masked at ``finfo.min``.

    >>> st.logits(("B", "C"), min_value=-1e4, max_value=1e4)
    logits(('B', 'C'), min_value=-10000.0, max_value=10000.0)
    """
    return _float_strategy("logits", shape, min_value, max_value)


def embeddings(
    shape: Shape, *, min_value: float | None = None, max_value: float | None = None
) -> TensorStrategy:
    """Row vectors: zero rows, duplicate rows (distance 0), outliers, huge and tiny norms.

    >>> st.embeddings(("B", "D"), min_value=-100, max_value=100)
    embeddings(('B', 'D'), min_value=-100, max_value=100)
    """
    return _float_strategy("embeddings", shape, min_value, max_value)


def activations(
    shape: Shape, *, min_value: float | None = None, max_value: float | None = None
) -> TensorStrategy:
    """Inputs of normalization layers: near-constant rows (variance ~ eps), large common offsets.

    >>> st.activations(("B", "L", 8))
    activations(('B', 'L', 8))
    """
    return _float_strategy("activations", shape, min_value, max_value)


def probabilities(
    shape: Shape, *, dim: int = -1, min_value: float | None = None, max_value: float | None = None
) -> TensorStrategy:
    """Distributions along ``dim``: softmax rows from flat to saturated, exact one-hot, exact zeros.

    >>> st.probabilities(("B", "C"))
    probabilities(('B', 'C'))
    """
    shp = _check_shape("probabilities", shape)
    if not isinstance(dim, int) or not -len(shp) <= dim < max(len(shp), 1):
        raise InvalidArgument(
            f"probabilities(dim={dim!r}): must index a dimension of shape={shp!r}"
        )
    v.check_range("probabilities", min_value, max_value)
    lo, hi = min_value, max_value
    if (lo is not None and lo < 0) or (hi is not None and hi > 1):
        raise InvalidArgument(
            f"probabilities: min_value={lo!r}, max_value={hi!r} must lie in [0, 1]"
        )
    keywords = {
        k: x
        for k, x in (("dim", dim if dim != -1 else None), ("min_value", lo), ("max_value", hi))
        if x is not None
    }
    call = format_call("probabilities", [repr(shp)], keywords)
    return TensorStrategy("probabilities", shp, lo, hi, options=(("dim", dim),), call=call)


def masks(shape: Shape) -> TensorStrategy:
    """Boolean masks, ``True`` = keep: all open, random, fully masked rows, one open per row, all masked.

    >>> st.masks(("B", "L"))
    masks(('B', 'L'))
    """
    shp = _check_shape("masks", shape)
    return TensorStrategy("masks", shp, call=format_call("masks", [repr(shp)], {}))


def targets(
    shape: Shape, *, num_classes: int | str, ignore_index: int | None = None
) -> TensorStrategy:
    """Class indices in ``[0, num_classes)``; ``num_classes`` may be a dimension name shared with
    logits. With ``ignore_index`` set, some or all targets take that value.

    >>> st.targets(("B",), num_classes="C", ignore_index=-100)
    targets(('B',), num_classes='C', ignore_index=-100)
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
    call = format_call("targets", [repr(shp)], dict(opts))
    return TensorStrategy("targets", shp, options=opts, call=call)


def scalars(min_value: float, max_value: float, *, log: bool = False) -> ScalarStrategy:
    """Python floats in ``[min_value, max_value]``, log-uniform with ``log=True``; both ends are
    drawn on purpose.

    >>> st.scalars(1e-12, 1e-3, log=True)
    scalars(min_value=1e-12, max_value=0.001, log=True)
    """
    if min_value is None or max_value is None:
        raise InvalidArgument("scalars: min_value and max_value are required")
    v.check_range("scalars", min_value, max_value)
    if log and min_value <= 0:
        raise InvalidArgument(f"scalars(log=True) needs min_value > 0; got min_value={min_value!r}")
    keywords: dict[str, Any] = {"min_value": min_value, "max_value": max_value}
    if log:
        keywords["log"] = True
    call = format_call("scalars", [], keywords)
    return ScalarStrategy("scalars", float(min_value), float(max_value), log, call)


def temperatures(min_value: float = 0.01, max_value: float = 1.0) -> ScalarStrategy:
    """Softmax temperatures (or any smoothing scale), log-uniform, with ``min_value`` drawn on
    purpose.

    >>> st.temperatures(0.01, 1.0)
    temperatures(min_value=0.01, max_value=1.0)
    """
    v.check_range("temperatures", min_value, max_value)
    if min_value <= 0:
        raise InvalidArgument(f"temperatures(min_value={min_value!r}): must be > 0")
    call = format_call("temperatures", [], {"min_value": min_value, "max_value": max_value})
    return ScalarStrategy("temperatures", float(min_value), float(max_value), True, call)


# ------------------------------------------------------------------------- examples


def examples(
    arguments: Mapping[str, ArgumentStrategy],
    mode: Mode,
    dims: Mapping[str, tuple[int, int]] | None = None,
) -> SearchStrategy[Example]:
    """Draw every dimension name once, then a recipe per argument, some tied to earlier ones."""
    ranges = resolve_dims(arguments, dims)
    # a fixed size draws nothing: Hypothesis's mutator would copy another integer choice (a
    # seed, the other size) onto its one-value span, an invalid test case that costs a real one
    sizes = {
        n: hst.just(lo) if lo == hi else hst.integers(lo, hi)
        for n, (lo, hi) in sorted(ranges.items())
    }
    # which earlier float argument of the same declared shape each float argument may copy
    partners: dict[str, str] = {}
    for i, (name, a) in enumerate(arguments.items()):
        if not (isinstance(a, TensorStrategy) and a.kind in FLOAT_KINDS):
            continue
        for earlier, b in list(arguments.items())[:i]:
            if isinstance(b, TensorStrategy) and b.kind in FLOAT_KINDS and b.shape == a.shape:
                partners[name] = earlier
                break

    @hst.composite
    def draw_example(draw: hst.DrawFn) -> Example:
        drawn = {n: draw(s) for n, s in sizes.items()}
        recipes: dict[str, Recipe] = {}
        for name, a in arguments.items():
            recipe = a.draw(draw, drawn, mode)
            if name in partners:
                assert isinstance(a, TensorStrategy) and isinstance(recipe, TensorRecipe)
                recipe = a.draw_related(draw, recipe, partners[name], mode) or recipe
            recipes[name] = recipe
        return Example(drawn, recipes)

    return draw_example()


def resolve_dims(
    arguments: Mapping[str, ArgumentStrategy], dims: Mapping[str, tuple[int, int]] | None
) -> dict[str, tuple[int, int]]:
    """The size range of every dimension name, with ``dims`` overriding ``DEFAULT_DIM_RANGE``."""
    used = set().union(*(a.dim_names for a in arguments.values())) if arguments else set()
    dims = v.check_dims(dims or {})
    unknown = set(dims) - used
    if unknown:
        raise InvalidArgument(
            f"dims={dims!r} names {sorted(unknown)} which no argument uses; names in use: {sorted(used)}"
        )
    return {n: dims.get(n, DEFAULT_DIM_RANGE) for n in used}


# -------------------------------------------------------------- inference from names

_BY_NAME: tuple[tuple[str, Callable[[], ArgumentStrategy]], ...] = (
    (r"logits?|scores?|preds?|predictions?|outputs?", lambda: logits(("B", "D"))),
    (r"targets?|labels?|classes|y_true", lambda: targets(("B",), num_classes="D")),
    (r"masks?|attn_mask|attention_mask|padding_mask", lambda: masks(("B", "D"))),
    (r"probs?|probabilities|p|q|dist|distribution", lambda: probabilities(("B", "D"))),
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

    Used by ``stress fuzz`` when no strategy is given. Every inferred tensor shares the shape
    ``(B, D)`` (targets: ``(B,)`` with ``D`` classes), so a function's arguments fit together.
    """
    for pattern, build in _BY_NAME:
        if re.fullmatch(pattern, name, flags=re.IGNORECASE):
            return build()
    known = "logits, targets, mask, probs, temp, eps, x/y/emb*, input/hidden*"
    raise InvalidArgument(
        f'cannot infer a strategy for parameter {name!r}; give one with --arg {name}=\'tensors(("B", "D"))\'. '
        f"Names understood: {known}"
    )


_BUILDERS = (
    "tensors",
    "logits",
    "embeddings",
    "activations",
    "probabilities",
    "masks",
    "targets",
    "scalars",
    "temperatures",
)


def parse(expression: str) -> ArgumentStrategy:
    """Evaluate a strategy expression such as ``embeddings(("B", "D"), max_value=10)``.

    Only this module's public builders and literals are in scope.
    """
    scope: dict[str, Any] = {n: globals()[n] for n in _BUILDERS}
    try:
        value = eval(expression, {"__builtins__": {}}, scope)
    except InvalidArgument:
        raise
    except Exception as e:  # noqa: BLE001 - any mistake in the expression is a usage error
        raise InvalidArgument(
            f"cannot parse strategy {expression!r} ({type(e).__name__}: {e}); builders are {', '.join(_BUILDERS)}"
        ) from None
    if callable(value) and getattr(value, "__name__", None) in _BUILDERS:
        raise InvalidArgument(
            f'strategy {expression!r}: call the builder, e.g. \'{value.__name__}(("B", "D"))\''
        )
    if not isinstance(value, ArgumentStrategy):
        raise InvalidArgument(
            f"strategy {expression!r} gave {type(value).__name__} {value!r}, not a strategy; "
            f"builders are {', '.join(_BUILDERS)}"
        )
    return value
