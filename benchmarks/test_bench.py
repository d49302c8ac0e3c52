"""What a search costs (``nox -s bench``).

- drawing and materializing one example, at 8×16 and at 64×512, beside ``hypothesis.extra.numpy``
  drawing the same number of float16 arrays element by element;
- a seeded ``stress.fuzz`` run against evaluating the same function directly on the examples
  that run evaluated (forward and backward in the mode and in float64), in one process: the
  median ratio of several rounds that time each in turn; beside it, the floor of any harness that
  runs one Hypothesis test case per example: a bare ``@given`` that draws one integer and does
  the same direct evaluation. The function casts to
  float32 on purpose, as stable code does, so its direct float64 pass runs under
  :class:`~stress.engine.reference.Float64Reference` — without it that pass would be float32
  work; the ratio against the plain (float32) pass is recorded beside it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

import stress
from stress import Mode, st
from stress.core.strategies import examples
from stress.engine.evaluation import FunctionSession, round_to_mode
from stress.engine.reference import Float64Reference

FP16 = Mode("fp16")
SHAPES = [(8, 16), (64, 512)]


def draw(strategy: Any, n: int) -> list[Any]:
    drawn: list[Any] = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate])
    @given(strategy)
    def collect(ex: Any) -> None:
        drawn.append(ex)

    collect()
    return drawn


def generate(shape: tuple[int, int], n: int) -> list[dict[str, Any]]:
    strategy = examples(
        {"x": st.embeddings(("B", "D"))},
        FP16,
        dims={"B": (shape[0], shape[0]), "D": (shape[1], shape[1])},
    )
    return [
        {k: round_to_mode(v, FP16) for k, v in ex.materialize(FP16).items()}
        for ex in draw(strategy, n)
    ]


def generate_numpy(shape: tuple[int, int], n: int) -> list[torch.Tensor]:
    """The same number of float16 arrays drawn element by element by ``hypothesis.extra.numpy``."""
    arrays = hnp.arrays(np.float16, shape, elements=hst.floats(-1e4, 1e4, width=16))
    return [torch.from_numpy(a) for a in draw(arrays, n)]


@pytest.mark.parametrize("shape", SHAPES, ids=["8x16", "64x512"])
def test_generation_cost_per_example(benchmark: Any, shape: tuple[int, int], quick: bool) -> None:
    n = 20 if quick else 300
    drawn = benchmark.pedantic(
        generate, args=(shape, n), rounds=1 if quick else 5, iterations=1, warmup_rounds=1
    )
    per_example_ms = benchmark.stats.stats.mean / len(drawn) * 1e3
    # side by side, in the same run: hypothesis.extra.numpy drawing the elements themselves
    start = time.perf_counter()
    arrays = generate_numpy(shape, n)
    numpy_ms = (time.perf_counter() - start) / len(arrays) * 1e3
    # and Hypothesis's own cost of a test case that draws a single integer: the floor
    start = time.perf_counter()
    integers = draw(hst.integers(0, 2**64), n)
    floor_ms = (time.perf_counter() - start) / len(integers) * 1e3
    benchmark.extra_info.update(
        ms_per_example=round(per_example_ms, 4),
        hypothesis_numpy_ms_per_example=round(numpy_ms, 4),
        hypothesis_one_integer_ms_per_example=round(floor_ms, 4),
        examples=len(drawn),
    )
    print(
        f"\n{shape}: {per_example_ms:.3f} ms to draw and materialize one example ({len(drawn)} "
        f"examples); hypothesis.extra.numpy: {numpy_ms:.3f} ms; one integer: {floor_ms:.3f} ms"
    )
    assert drawn and drawn[0]["x"].shape == shape and arrays[0].shape == shape


def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.autocast(x.device.type, enabled=False):
        xn = torch.nn.functional.normalize(x.float(), dim=-1, eps=1e-3)
        yn = torch.nn.functional.normalize(y.float(), dim=-1, eps=1e-3)
        return torch.nn.functional.cross_entropy(xn @ yn.T / 0.07, torch.arange(len(x)))


@pytest.mark.parametrize("shape", SHAPES, ids=["8x16", "64x512"])
def test_fuzz_overhead_vs_direct_evaluation(
    benchmark: Any, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int], quick: bool
) -> None:
    n = 20 if quick else 200
    dims = {"B": shape[0], "D": shape[1]}
    target = stress.target(
        loss,
        dims=dims,
        x=st.embeddings(("B", "D"), min_value=-100, max_value=100),
        y=st.embeddings(("B", "D"), min_value=-100, max_value=100),
    )

    def fuzz() -> stress.Report:
        return stress.run([target], modes=("fp16",), profile="ci", max_examples=n, jobs=0, seed=0)

    report = benchmark.pedantic(fuzz, rounds=1 if quick else 5, iterations=1, warmup_rounds=1)
    assert report.ok, str(report)
    # the examples that search evaluated, recorded by running it once more (it is seeded)
    values: list[dict[str, Any]] = []
    check_values = FunctionSession.check_values

    def record(self: FunctionSession, vals: dict[str, Any], **kwargs: Any) -> Any:
        values.append(vals)
        return check_values(self, vals, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(FunctionSession, "check_values", record)
        fuzz()
    # (the search's count also holds the few test cases Hypothesis gave up drawing)
    assert 0 < len(values) <= report.results[0].examples
    # the same work done directly: forward and backward in the mode and in float64, no harness
    session = FunctionSession(target, FP16)

    def evaluate_directly(v: dict[str, Any], in_float64: Callable[[], Any]) -> None:
        session._call(v, {}, "cpu", reference=False)
        with in_float64():
            session._call({k: t.double() for k, t in v.items()}, {}, "cpu", reference=True)

    def direct(in_float64: Callable[[], Any]) -> float:
        start = time.perf_counter()
        for v in values:
            evaluate_directly(v, in_float64)
        return time.perf_counter() - start

    def bare_hypothesis() -> tuple[float, float]:
        """The same direct evaluation, one example per test case of a bare ``@given``: the
        time in all, and the time spent in the evaluation itself."""
        runs, inside = [0], [0.0]

        @settings(
            max_examples=len(values),
            database=None,
            deadline=None,
            phases=[Phase.generate],
            derandomize=True,
        )
        @given(hst.integers(0, 2**32))
        def evaluate(i: int) -> None:
            runs[0] += 1
            start = time.perf_counter()
            evaluate_directly(values[i % len(values)], Float64Reference)
            inside[0] += time.perf_counter() - start

        start = time.perf_counter()
        evaluate()
        assert runs[0] == len(values)
        return time.perf_counter() - start, inside[0]

    direct(Float64Reference)  # warm-up
    bare_hypothesis()
    # fuzz, direct and the bare test timed in turn, so this VM's drift (up to 2x within an hour)
    # hits every side of each ratio alike; the median ratio over the rounds is the figure
    rounds = []
    for _ in range(1 if quick else 5):
        start = time.perf_counter()
        fuzz()
        fuzz_round = time.perf_counter() - start
        rounds.append((fuzz_round, direct(Float64Reference), *bare_hypothesis()))
    fuzz_s, direct_s = (statistics.median(r[i] for r in rounds) for i in (0, 1))
    ratio = statistics.median(f / d for f, d, _, _ in rounds)
    floor_ratio = statistics.median(b / d for _, d, b, _ in rounds)
    # the evaluation alone, between Hypothesis's test cases against the direct loop's
    slowdown = statistics.median(e / d for _, d, _, e in rounds)
    plain_s = statistics.median(direct(contextlib.nullcontext) for _ in range(3))
    benchmark.extra_info.update(
        examples=len(values),
        fuzz_s=round(fuzz_s, 3),
        direct_s=round(direct_s, 3),
        ratio=round(ratio, 2),
        bare_hypothesis_ratio=round(floor_ratio, 2),
        evaluation_slowdown_in_hypothesis=round(slowdown, 2),
        ratio_to_float32_pass=round(fuzz_s / plain_s, 2),
    )
    print(
        f"\n{shape}: fuzz {fuzz_s:.3f} s vs direct {direct_s:.3f} s for the same {len(values)} "
        f"examples: {ratio:.2f}x, the median of {len(rounds)} rounds timed in turn "
        f"({fuzz_s / plain_s:.2f}x a direct pass left in float32); a bare @given doing the same "
        f"evaluation: {floor_ratio:.2f}x, where the evaluation itself takes {slowdown:.2f}x "
        "its time in the direct loop"
    )
