"""Benchmarks run with ``nox -s bench``; ``--quick`` (what CI runs) shrinks every size so they
cannot rot, and their numbers are then only a smoke test."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="small sizes: a smoke test, not a measurement",
    )


@pytest.fixture
def quick(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--quick"))
