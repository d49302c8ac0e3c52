"""Overhead of GuardedStep per optimizer step versus an unguarded step (``nox -s bench``).

Goal: under 5% with the default options (no accumulation checks), for a small MLP and for a
model of about 10M parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch

from stress import GuardedStep

MODELS = {
    "small_mlp": (
        lambda: torch.nn.Sequential(
            torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
        ),
        32,
        64,
    ),
    "mlp_10M": (
        lambda: torch.nn.Sequential(
            torch.nn.Linear(1024, 4096),
            torch.nn.ReLU(),
            torch.nn.Linear(4096, 1024),
            torch.nn.ReLU(),
            torch.nn.Linear(1024, 1024),
        ),
        1024,
        32,
    ),
}


def setup(name: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, Callable[[], torch.Tensor]]:
    factory, width, batch = MODELS[name]
    torch.manual_seed(0)
    model = factory()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, width)
    return model, opt, lambda: model(x).pow(2).mean()


def per_step(fn: Callable[[], object], steps: int) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


@pytest.mark.parametrize("name", list(MODELS))
def test_guarded_step_overhead(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    model, opt, loss = setup(name)
    guard = GuardedStep(model, opt)
    steps = 200 if name == "small_mlp" else 10

    def unguarded() -> None:
        loss().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def guarded() -> None:
        guard.step(loss())

    # interleave rounds so drift on a shared machine hits both alike; take the medians
    plain_times, guarded_times = [], []
    for _ in range(5):
        plain_times.append(per_step(unguarded, steps))
        guarded_times.append(per_step(guarded, steps))
    plain_s, guarded_s = sorted(plain_times)[2], sorted(guarded_times)[2]
    benchmark.pedantic(guarded, rounds=5, iterations=steps)
    params = sum(p.numel() for p in model.parameters())
    overhead = guarded_s / plain_s - 1
    benchmark.extra_info.update(
        params=params, unguarded_ms=plain_s * 1e3, guarded_ms=guarded_s * 1e3, overhead=overhead
    )
    print(
        f"\n{name} ({params / 1e6:.2f}M params): unguarded {plain_s * 1e3:.3f} ms, guarded {guarded_s * 1e3:.3f} ms, overhead {overhead:+.1%}"
    )
    assert guard.counts["steps"] > 0
