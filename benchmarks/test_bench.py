"""Speed targets live here, not in unit tests: ``nox -s bench``.

- generating one example (draw the recipe, materialize, round) costs at most 1 ms of harness
  time for any shape up to 64×512;
- a ``stress.fuzz`` run costs a small multiple of evaluating the same function on the same
  examples directly (forward + backward in the mode, plus the float64 reference).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from hypothesis import given, settings

import stress
from stress import Mode, st
from stress.runner import _Executor, _round
from stress.strategies import examples

N = 200
FP16 = Mode("fp16")


def generate(shape: tuple[int, int], n: int) -> list[dict[str, Any]]:
    drawn: list[dict[str, Any]] = []
    strategy = examples(
        {"x": st.embeddings(("B", "D"))},
        FP16,
        dims={"B": (shape[0], shape[0]), "D": (shape[1], shape[1])},
    )

    @settings(max_examples=n, database=None, deadline=None, phases=["generate"])
    @given(strategy)
    def draw(ex):  # type: ignore[no-untyped-def]
        drawn.append({k: _round(r.materialize(FP16), FP16) for k, r in ex.recipes.items()})

    draw()
    return drawn


@pytest.mark.parametrize("shape", [(8, 16), (64, 512)], ids=["8x16", "64x512"])
def test_generation_cost_per_example(benchmark, shape: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    drawn = benchmark.pedantic(generate, args=(shape, N), rounds=5, iterations=1)
    per_example_ms = benchmark.stats.stats.mean / len(drawn) * 1e3
    benchmark.extra_info["ms_per_example"] = round(per_example_ms, 4)
    benchmark.extra_info["examples"] = len(drawn)
    print(f"\n{shape}: {per_example_ms:.3f} ms per example over {len(drawn)} examples")


def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.autocast(x.device.type, enabled=False):
        logits = (
            torch.nn.functional.normalize(x.float(), dim=-1, eps=1e-3)
            @ torch.nn.functional.normalize(y.float(), dim=-1, eps=1e-3).T
        )
        return torch.nn.functional.cross_entropy(logits / 0.07, torch.arange(len(x)))


@pytest.mark.parametrize("shape", [(8, 16), (64, 512)], ids=["8x16", "64x512"])
def test_fuzz_overhead_vs_direct_evaluation(benchmark, shape: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    dims = {"B": (shape[0], shape[0]), "D": (shape[1], shape[1])}
    kwargs = dict(x=st.embeddings(("B", "D")), y=st.embeddings(("B", "D")))
    target = stress.target(loss, dims=dims, **kwargs)

    def fuzz() -> stress.Report:
        return stress.run([target], modes=("fp16",), profile="ci", max_examples=N)

    report = benchmark.pedantic(fuzz, rounds=3, iterations=1)
    assert report.ok
    n = report.results[0].examples
    fuzz_s = benchmark.stats.stats.mean

    # the same work done directly: forward+backward in the mode and in float64, no harness
    strategy = examples(target.arguments, FP16, dims)
    values: list[dict[str, Any]] = []

    @settings(max_examples=n, database=None, deadline=None, phases=["generate"])
    @given(strategy)
    def collect(ex):  # type: ignore[no-untyped-def]
        values.append({k: _round(r.materialize(FP16), FP16) for k, r in ex.recipes.items()})

    collect()
    executor = _Executor(target, FP16)
    start = time.perf_counter()
    for v in values:
        executor._call(None, v, "cpu", reference=False)
        executor._call(None, {k: t.double() for k, t in v.items()}, "cpu", reference=True)
    direct_s = (time.perf_counter() - start) * n / len(values)
    ratio = fuzz_s / direct_s
    benchmark.extra_info.update(
        examples=n, fuzz_s=round(fuzz_s, 3), direct_s=round(direct_s, 3), ratio=round(ratio, 2)
    )
    print(
        f"\n{shape}: fuzz {fuzz_s:.3f} s vs direct {direct_s:.3f} s for {n} examples: ratio {ratio:.2f}"
    )
