"""``stress run`` with one worker process against one per core (``nox -s bench``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def wall_time(jobs: str, paths: list[str], out: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stress.integrations.cli",
            "run",
            *paths,
            "--profile",
            "ci",
            "-j",
            jobs,
            "--no-progress",
            "--report-dir",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), (
        done.stdout[-3000:] + done.stderr[-3000:]
    )  # timed, whatever it found
    return time.perf_counter() - start


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_built_in_suites_by_worker_count(
    benchmark: Any, jobs: str, quick: bool, tmp_path: Path
) -> None:
    paths = ["suites/seeds.py"] if quick else ["suites/"]
    seconds = benchmark.pedantic(wall_time, args=(jobs, paths, tmp_path), rounds=1, iterations=1)
    benchmark.extra_info["seconds"] = seconds
    print(f"\nstress run {' '.join(paths)} -j {jobs}: {seconds:.1f} s")
