"""The corpus of naive/stable pairs, checked with plain torch (no harness internals).

1. every naive trigger fails, in its mode, the way the pair says;
2. the stable twin is finite and within tolerance (outputs and gradients) on every trigger of
   the pair, in every mode;
3. the corpus is well formed.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
import torch
from corpus import PAIRS, Pair
from corpus.pairs import ALL_MODES
from corpus.plain import FAILURE_KINDS, MODES, evaluate, failures, stable_problems

MODE_NAMES = tuple(MODES)


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _naive_cases() -> list[Any]:
    return [
        pytest.param(pair, mode, id=f"{pair.name}-{mode}")
        for pair in PAIRS
        for mode in MODE_NAMES
        if mode in pair.fails_in
    ]


def _stable_cases() -> list[Any]:
    cases = []
    for pair in PAIRS:
        for mode in MODE_NAMES:
            for source_mode in sorted(pair.triggers):
                cases.append(
                    pytest.param(pair, mode, source_mode, id=f"{pair.name}-{mode}-on-{source_mode}")
                )
    return cases


@pytest.mark.parametrize(("pair", "mode"), _naive_cases())
def test_naive_trigger_fails_as_stated(pair: Pair, mode: str) -> None:
    ev = evaluate(pair.naive, pair.triggers[mode], mode, pair.wrt)
    shown = failures(ev)
    assert pair.failure[mode] in shown, (
        f"{pair.name} in {mode} should show {pair.failure[mode]}; shows {sorted(shown)}: "
        f"{ev.summary()}"
    )


@pytest.mark.parametrize(("pair", "mode", "source_mode"), _stable_cases())
def test_stable_twin_passes_every_trigger(pair: Pair, mode: str, source_mode: str) -> None:
    ev = evaluate(pair.stable, pair.triggers[source_mode], mode, pair.wrt)
    problems = stable_problems(ev)
    assert not problems, f"{pair.name}.stable in {mode}: {problems}: {ev.summary()}"


def test_the_stable_twin_agrees_with_the_naive_one_where_both_are_fine() -> None:
    """On a benign input the two are the same function: equal in float64."""
    torch.manual_seed(0)
    checked = 0
    for pair in PAIRS:
        values = _benign_input(pair)
        naive = evaluate(pair.naive, values, "fp32", pair.wrt)
        stable = evaluate(pair.stable, values, "fp32", pair.wrt)
        assert naive.ref_output.shape == stable.ref_output.shape, pair.name
        assert torch.allclose(naive.ref_output, stable.ref_output, rtol=1e-9, atol=1e-9), (
            f"{pair.name}: naive {naive.ref_output} != stable {stable.ref_output} in float64"
        )
        for name, g in naive.ref_grads.items():
            assert torch.allclose(g, stable.ref_grads[name], rtol=1e-7, atol=1e-9), (
                f"{pair.name}: gradient w.r.t. {name} differs in float64"
            )
        checked += 1
    assert checked == len(PAIRS)


# Moderate values, away from every kink and limit: the same number from both formulas.
_BENIGN: dict[str, dict[str, Any]] = {
    "poincare_distance_acosh": dict(u=[[0.1, -0.2]], v=[[0.3, 0.05]]),
    "arcface_acos_margin": dict(cosine=[[0.3, -0.4, 0.1]], target=[2]),
    "dice_empty_masks": dict(probs=[[0.2, 0.9, 0.4]], target=[[0, 1, 1]]),
    "attention_fully_masked_row": dict(
        q=[[0.5, -1.0]],
        k=[[1.0, 0.2], [0.3, -0.7]],
        v=[[1.0, 2.0], [3.0, -4.0]],
        mask=[[True, False]],
    ),
    "attention_minus_1e9_mask": dict(
        q=[[0.5, -1.0], [1.0, 1.0]],
        k=[[1.0, 0.2], [0.3, -0.7]],
        v=[[1.0, 2.0], [3.0, -4.0]],
        mask=[[True, False], [True, True]],
    ),
    "masked_mean_pooling": dict(hidden=[[[1.0, 2.0], [3.0, -1.0]]], mask=[[True, False]]),
    "distillation_kl": dict(target=[[0.2, 0.3, 0.5]], logits=[[0.1, -1.0, 2.0]]),
    "soft_target_cross_entropy": dict(target=[[0.2, 0.3, 0.5]], logits=[[0.1, -1.0, 2.0]]),
}


def _benign_input(pair: Pair) -> dict[str, Any]:
    if pair.name in _BENIGN:
        return {
            k: torch.tensor(v) if isinstance(v, list) else v for k, v in _BENIGN[pair.name].items()
        }
    trigger = next(iter(pair.triggers.values()))
    values: dict[str, Any] = {}
    for name, v in trigger.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            values[name] = torch.randn(v.shape) * 0.5
        elif isinstance(v, float):
            values[name] = 0.5
        else:
            values[name] = v
    return values


# ------------------------------------------------------------------------------ structure


def test_the_corpus_is_large_and_names_are_unique() -> None:
    names = [p.name for p in PAIRS]
    assert len(PAIRS) >= 32
    assert len(set(names)) == len(names), "duplicate names"
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names), names


def test_at_least_ten_pairs_fail_in_fp32() -> None:
    assert sum("fp32" in p.fails_in for p in PAIRS) >= 10


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.name)
def test_pair_is_well_formed(pair: Pair) -> None:
    assert pair.source.strip() and pair.category.strip()
    assert pair.fails_in and pair.fails_in <= ALL_MODES
    assert set(pair.triggers) == set(pair.fails_in), "a trigger for exactly the failing modes"
    assert set(pair.failure) == set(pair.fails_in), "a failure kind for every failing mode"
    assert set(pair.failure.values()) <= set(FAILURE_KINDS)
    strategies = pair.strategies()
    naive_params = set(inspect.signature(pair.naive).parameters)
    stable_params = set(inspect.signature(pair.stable).parameters)
    assert naive_params == stable_params == set(strategies), "keyword-compatible arguments"
    for trigger in pair.triggers.values():
        assert set(trigger) == naive_params
        for v in trigger.values():
            if isinstance(v, torch.Tensor):
                assert v.numel() <= 32, "triggers stay small and readable"
    if pair.wrt is not None:
        assert set(pair.wrt) <= naive_params
