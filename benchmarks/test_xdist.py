"""``pytest suites/ -n 2`` against one process, on this machine (``nox -s bench``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [
    sys.executable,
    "-m",
    "pytest",
    "suites/",
    "-q",
    "-p",
    "no:cacheprovider",
    "--stress-profile",
    "ci",
]


def wall_time(*extra: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([*COMMAND, *extra], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    return time.perf_counter() - start


@pytest.mark.parametrize("workers", ["1", "2"])
def test_built_in_suites_with_xdist(benchmark, workers: str) -> None:  # type: ignore[no-untyped-def]
    extra = () if workers == "1" else ("-n", workers)
    seconds = benchmark.pedantic(wall_time, args=extra, rounds=1, iterations=1)
    benchmark.extra_info["seconds"] = seconds
    print(f"\npytest suites/ with {workers} process(es): {seconds:.1f} s")
