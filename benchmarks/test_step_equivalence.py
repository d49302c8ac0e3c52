"""What ``step_equivalence`` costs per training step (``nox -s bench``).

The same drawn examples of a nanoGPT-style step (four micro-batches inside one call, one
``optimizer.step()``) run with and without the check; the ratio of the two is the price of
comparing every step with one float64 step on the whole batch. Goal: at most 2×.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import Phase, given, settings

from stress import Mode
from stress.steps.session import StepSession

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "suites"))
import training


def _examples(session: StepSession, n: int) -> list[Any]:
    drawn: list[Any] = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate])
    @given(session.strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn


def seconds(session: StepSession, drawn: list[Any]) -> float:
    start = time.perf_counter()
    for example in drawn:
        session.run(example)
    return time.perf_counter() - start


def test_step_equivalence_overhead(benchmark: Any, quick: bool) -> None:
    target = training.micro_batch_accumulation
    checked = StepSession(target, Mode("fp32"))
    plain = StepSession(
        target.__class__(
            **{**target.__dict__, "options": target.options.replace(step_equivalence=False)}
        ),
        Mode("fp32"),
    )
    drawn = _examples(checked, 10 if quick else 60)
    seconds(plain, drawn[:3])  # warm up
    with_check = benchmark.pedantic(
        seconds, args=(checked, drawn), rounds=1 if quick else 3, iterations=1
    )
    del with_check
    checked_s = benchmark.stats.stats.mean
    plain_s = min(seconds(plain, drawn) for _ in range(1 if quick else 3))
    ratio = checked_s / plain_s
    benchmark.extra_info.update(
        checked_s=round(checked_s, 3), plain_s=round(plain_s, 3), ratio=round(ratio, 2)
    )
    print(
        f"\nstep_equivalence: {checked_s:.3f} s with the check, {plain_s:.3f} s without: {ratio:.2f}x per step"
    )
