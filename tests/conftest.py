from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def suites_dir() -> Path:
    return ROOT / "suites"


@pytest.fixture(autouse=True)
def _example_database_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dev profile saves failing examples; keep them out of the working tree."""
    monkeypatch.setenv("STRESS_EXAMPLE_DB", str(tmp_path / "examples"))


@pytest.fixture(scope="session")
def suites_report() -> object:
    """Every built-in suite, once per session, in every CPU mode (ci profile, every failure
    shrunk: the tests read the minimal counterexamples of expected failures too)."""
    import stress
    from stress.core.modes import MODE_NAMES
    from stress.engine.discovery import collect_targets

    return stress.run(
        collect_targets([str(ROOT / "suites")]), modes=MODE_NAMES, profile="ci", shrink="all"
    )
