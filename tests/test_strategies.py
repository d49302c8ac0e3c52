from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as hst

from stress import InvalidArgument, Mode, st
from stress.core.recipes import PATTERNS as _PATTERNS
from stress.core.recipes import Example, Recipe, ScalarRecipe, TensorRecipe
from stress.core.strategies import examples

FP16, BF16, FP32 = Mode("fp16"), Mode("bf16"), Mode("fp32")
FAST = settings(max_examples=60, database=None, deadline=None)


def recipe(
    kind: str,
    pattern: str,
    shape: tuple[int, ...] = (4, 6),
    scale: float = 0.0,
    lo: float | None = None,
    hi: float | None = None,
    **options: Any,
) -> TensorRecipe:
    return TensorRecipe(kind, shape, shape, pattern, scale, 0, lo, hi, tuple(options.items()))


def test_zero_rows() -> None:
    t = recipe("embeddings", "zero_rows").materialize(FP32)
    assert (t[0] == 0).all() and (t[2] == 0).all() and (t[1] != 0).any()


def test_duplicate_rows() -> None:
    t = recipe("embeddings", "duplicate_rows").materialize(FP32)
    assert torch.equal(t[0], t[1]) and torch.equal(t[2], t[3])


def test_near_constant_rows_have_variance_near_eps() -> None:
    t = recipe("activations", "near_constant_rows").materialize(FP16).to(torch.float16).double()
    spread = (t.max(-1).values - t.min(-1).values).max()
    assert 0 <= float(spread) <= 8 * torch.finfo(torch.float16).eps


def test_one_hot_rows() -> None:
    t = recipe("logits", "one_hot_rows").materialize(FP32)
    assert torch.equal(t.sum(-1), torch.ones(4, dtype=t.dtype)) and set(t.unique().tolist()) == {
        0.0,
        1.0,
    }


def test_outliers_reach_sqrt_max() -> None:
    t = recipe("tensors", "outliers").materialize(FP16)
    assert float(t.abs().max()) > 0.5 * math.sqrt(65504)


def test_common_offset_makes_differences_cancel() -> None:
    t = recipe("activations", "common_offset").materialize(FP16)
    assert float(t.mean()) > 100 and float(t.std()) < 0.1 * float(t.mean())


def test_boundary_values_are_exact_domain_edges() -> None:
    t = recipe("tensors", "boundary", lo=-2.0, hi=0.5).materialize(FP32)
    assert set(t.unique().tolist()) <= {-2.0, -1.0, 0.0, 0.5}


def test_masked_logit_rows_sit_at_finfo_min() -> None:
    t = recipe("logits", "masked_rows").materialize(FP16)
    assert (t[0] == torch.finfo(torch.float16).min).all()


def test_scale_anchors_reach_the_dtype_max_and_tiny() -> None:
    near_max = recipe("tensors", "gaussian", scale=round(math.log10(65504), 2)).materialize(FP16)
    assert float(near_max.abs().max()) == 65504.0  # clamped into the finite range, not inf
    tiny = recipe(
        "tensors", "gaussian", scale=round(math.log10(torch.finfo(torch.float16).tiny), 2)
    )
    assert float(tiny.materialize(FP16).abs().max()) < 1e-3


def test_probability_patterns_are_distributions() -> None:
    for pattern in _PATTERNS["probabilities"]:
        p = recipe("probabilities", pattern, dim=-1).materialize(FP32)
        assert torch.allclose(p.sum(-1), torch.ones(4, dtype=p.dtype)), pattern
        assert (p >= 0).all()
    one_hot = recipe("probabilities", "one_hot", dim=-1).materialize(FP32)
    assert set(one_hot.unique().tolist()) == {0.0, 1.0}


def test_mask_patterns() -> None:
    m = recipe("masks", "fully_masked_rows").materialize(FP32)
    assert m.dtype == torch.bool and not m[0].any()
    assert recipe("masks", "all_open").materialize(FP32).all()
    assert not recipe("masks", "all_masked").materialize(FP32).any()
    assert (recipe("masks", "one_open_per_row").materialize(FP32).sum(-1) == 1).all()


def test_targets_patterns() -> None:
    t = recipe("targets", "random", shape=(50,), num_classes=3, ignore_index=-100).materialize(FP32)
    assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) < 3
    assert (
        recipe("targets", "all_ignored", shape=(5,), num_classes=3, ignore_index=-100).materialize(
            FP32
        )
        == -100
    ).all()
    assert (recipe("targets", "last_class", shape=(5,), num_classes=3).materialize(FP32) == 2).all()


@pytest.mark.parametrize("mode", [FP16, BF16, FP32, Mode("amp-fp16")])
def test_every_drawn_tensor_is_finite_in_domain_and_representable(mode: Mode) -> None:
    args = {"x": st.tensors(("B", "D")), "y": st.logits(("B", "D"), min_value=-3, max_value=5)}

    @FAST
    @given(examples(args, mode))
    def check(ex: Example) -> None:
        values = ex.materialize(mode)  # y may be drawn as a copy of x: materialized after it
        x, y = values["x"], values["y"]
        for t in (x, y):
            rounded = t.to(mode.storage_dtype)
            assert torch.isfinite(rounded).all()
        assert float(y.min()) >= -3 and float(y.max()) <= 5

    check()


def test_dimension_names_are_shared_between_arguments() -> None:
    args = {
        "logits": st.logits(("B", "C")),
        "target": st.targets(("B",), num_classes="C"),
    }

    @FAST
    @given(examples(args, FP32, dims={"B": (3, 5), "C": (2, 9)}))
    def check(ex: Example) -> None:
        logits = ex.recipes["logits"].materialize(FP32)
        target = ex.recipes["target"].materialize(FP32)
        assert logits.shape[0] == target.shape[0] == ex.dims["B"]
        assert 3 <= ex.dims["B"] <= 5
        assert int(target.max()) < logits.shape[1] == ex.dims["C"]

    check()


def test_shrinking_reaches_a_small_plain_recipe() -> None:
    args = {"x": st.embeddings(("B", "D"))}
    # any example with at least 3 rows: the minimal one is the plain 3x1 recipe at unit scale
    ex = find(examples(args, FP16), lambda e: e.dims["B"] >= 3, settings=settings(database=None))
    assert repr(ex.recipes["x"]) == "embeddings(B=3, D=1)"


def test_recipe_repr_reads_like_a_call() -> None:
    r = TensorRecipe("embeddings", (2, 3), ("B", "D"), "duplicate_rows", 3.0, 0, None, None)
    assert repr(r) == "embeddings(B=2, D=3, pattern='duplicate_rows', log10_scale=3.0)"
    assert repr(st.embeddings(("B", "D"), max_value=10)) == "embeddings(('B', 'D'), max_value=10)"


def test_temperatures_reach_their_minimum_and_stay_in_range() -> None:
    strat = st.temperatures(0.01, 1.0).recipes({}, FP32)
    smallest = find(
        strat,
        lambda r: isinstance(r, ScalarRecipe) and r.value == 0.01,
        settings=settings(database=None),
    )
    assert isinstance(smallest, ScalarRecipe) and smallest.value == 0.01

    @FAST
    @given(strat)
    def check(r: ScalarRecipe) -> None:
        assert 0.01 <= r.value <= 1.0

    check()


def test_plain_hypothesis_strategies_and_constants_are_accepted() -> None:
    from stress.core.strategies import as_argument_strategy

    @FAST
    @given(as_argument_strategy("k", hst.integers(1, 3)).recipes({}, FP32))
    def check(r: Recipe) -> None:
        assert r.materialize(FP32) in (1, 2, 3)

    check()
    constant = find(
        as_argument_strategy("k", 7).recipes({}, FP32),
        lambda r: True,
        settings=settings(database=None),
    )
    assert constant.materialize(FP32) == 7


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: st.tensors(cast(Any, ("B", 2.5))), "2.5"),
        (lambda: st.tensors(cast(Any, "B D")), "'B D'"),
        (lambda: st.tensors(("B",), min_value=2, max_value=1), "min_value=2 > max_value=1"),
        (lambda: st.tensors(("B",), max_value=math.inf), "max_value=inf"),
        (lambda: st.probabilities(("B",), dim=3), "dim=3"),
        (lambda: st.probabilities(("B",), max_value=2), "[0, 1]"),
        (lambda: st.targets(("B",), num_classes=0), "num_classes=0"),
        (lambda: st.temperatures(0.0, 1.0), "min_value=0.0"),
        (lambda: st.scalars(0, 1, log=True), "min_value=0"),
        (lambda: examples({"x": st.tensors(("B",))}, FP32, dims={"Q": (1, 2)}), "'Q'"),
        (lambda: examples({"x": st.tensors(("B",))}, FP32, dims={"B": (3, 1)}), "(3, 1)"),
        (lambda: st.parse("embeddings(('B',), bogus=1)"), "bogus"),
        (lambda: st.from_name("frobnicate"), "'frobnicate'"),
    ],
)
def test_invalid_arguments_raise_invalid_argument(call: Callable[[], object], needle: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        call()
    assert needle in str(e.value)


def test_from_name_and_parse() -> None:
    assert repr(st.from_name("logits")) == "logits(('B', 'D'))"
    assert repr(st.from_name("temperature")).startswith("temperatures(")
    assert (
        repr(st.parse("embeddings(('B', 'D'), max_value=10)"))
        == "embeddings(('B', 'D'), max_value=10)"
    )
