"""Developer sessions. torch is pinned to the CPU build through constraints.txt."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

CONSTRAINTS = ("-c", "constraints.txt")
PATHS = ("stress", "tests", "suites", "benchmarks", "noxfile.py")


def install(session: nox.Session, *extras: str, constraints: tuple[str, ...] = CONSTRAINTS) -> None:
    session.install(*constraints, "torch")
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install(*constraints, "-e", spec)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite."""
    install(session, "test")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11", default=False)
def oldest(session: nox.Session) -> None:
    """Run the tests with every dependency at the oldest version pyproject.toml allows.

    torch stays at the CPU build on this machine's disk (constraints.txt): the torch>=2.3 floor
    is what the code calls (torch.amp.GradScaler, F.rms_norm in the suites' adapters aside).
    """
    install(session, "test", constraints=("-c", "constraints.txt", "-c", "constraints-oldest.txt"))
    session.run("python", "-m", "pytest", "-x", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Lint and check formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", *PATHS)
    session.run("ruff", "format", "--check", *PATHS)


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """Type-check the package, the tests, the suites and the benchmarks with mypy."""
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
    """Benchmarks: example cost, harness overhead, corpus detection, step checks, workers."""
    install(session, "test")
    session.run(
        "python",
        "-m",
        "pytest",
        "benchmarks",
        "--benchmark-only",
        "-p",
        "no:cacheprovider",
        "-s",
        *session.posargs,
    )
