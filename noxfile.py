"""Developer sessions. torch is pinned to the CPU build through constraints.txt."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

CONSTRAINTS = ("-c", "constraints.txt")


def install(session: nox.Session, *extras: str) -> None:
    session.install(*CONSTRAINTS, "torch")
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install(*CONSTRAINTS, "-e", spec)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite."""
    install(session, "test")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Lint and check formatting with ruff."""
    session.install("ruff")
    paths = ("stress", "tests", "suites", "benchmarks", "noxfile.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy."""
    install(session, "dev")
    session.run("mypy", *session.posargs)


@nox.session(python="3.11", default=False)
def stress(session: nox.Session) -> None:
    """Run the built-in suites through the pytest plugin (ci profile) and write reports/stress/."""
    install(session, "test")
    args = session.posargs or [
        "--stress-profile",
        "ci",
        "--stress-report",
        "reports/stress",
        "-n",
        "2",
    ]
    session.run("python", "-m", "pytest", "suites/", "-p", "no:cacheprovider", *args)


@nox.session(python="3.11", default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: example generation cost and harness overhead (pytest-benchmark)."""
    install(session, "test")
    session.run(
        "python",
        "-m",
        "pytest",
        "benchmarks",
        "--benchmark-only",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )
