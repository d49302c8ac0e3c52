"""pytest plugin: stress targets as test items, one per target × mode, and a merged report.

Loaded through the ``pytest11`` entry point. It imports torch only when a stress item runs or
the ``stress_fuzz`` fixture is used, so ordinary test sessions pay nothing.

- ``pytest suites/`` collects ``@stress.target`` / ``@stress.step_target`` declarations from
  ``.py`` files (and from test modules) as items ``name[mode]``; ``expect="fail"`` behaves as a
  strict xfail, unsupported and unavailable modes as skips.
- Options (group ``stress``): the run's options of the ``stress`` CLI with a ``--stress-``
  prefix (``--stress-modes``, ``--stress-profile``, ``--stress-strict`` …), ``--stress-shard
  i/n`` (stress items and tests using ``stress_fuzz`` alike), ``--stress-report DIR`` (one
  merged report for the session, including ``stress.fuzz`` calls inside ordinary tests, also
  under pytest-xdist) and ``--stress-baseline FILE`` (fail only on regressions).
- ``@pytest.mark.stress(modes=..., max_examples=...)`` with validated keywords — every run and
  target option — read by the ``stress_fuzz`` fixture.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ..core.options import FunctionOptions, RunOptions
from ..engine.events import LISTENERS
from ..errors import StressError
from .flags import add_run_flags, in_shard

_DECLARES = re.compile(r"@stress\.(step_)?target\b|stress\.(step_)?target\(")
MARKER_KEYWORDS = frozenset(RunOptions.names()) | frozenset(FunctionOptions.names())
_SESSION = pytest.StashKey["_StressSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stress", "torch-stress: numerical stress testing")
    add_run_flags(group.addoption, prefix="--stress-", dest_prefix="stress_")
    group.addoption(
        "--stress-report",
        dest="stress_report",
        default=None,
        metavar="DIR",
        help="write one merged report of the session into DIR. Default: none",
    )
    group.addoption(
        "--stress-baseline",
        dest="stress_baseline",
        default=None,
        metavar="FILE",
        help="a saved report: stress items fail only on regressions against it. Default: none",
    )


def _share_cores_between_workers(config: pytest.Config) -> None:
    """Under pytest-xdist, give each worker its share of the cores: torch's default (all cores
    per process) oversubscribes the machine and makes ``-n 2`` slower than one process."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    threads = str(max(1, (os.cpu_count() or 1) // int(workerinput.get("workercount", 1))))
    os.environ.setdefault("OMP_NUM_THREADS", threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_configure(config: pytest.Config) -> None:
    _share_cores_between_workers(config)
    config.addinivalue_line(
        "markers",
        "stress(**options): options for the stress_fuzz fixture in this test; keywords: "
        + ", ".join(sorted(MARKER_KEYWORDS)),
    )
    session = _StressSession(config)
    session.baseline_ids()  # an unreadable baseline stops the session before any test runs
    config.stash[_SESSION] = session
    LISTENERS.append(session.record)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None and session.record in LISTENERS:
        LISTENERS.remove(session.record)


class _StressSession:
    """Everything the session ran through torch-stress, and how to write it out."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[Any] = []
        self.findings: list[Any] = []
        self.worker_dirs: list[Path] = []
        self._baseline: Any = None

    def record(self, result: Any, findings: list[Any]) -> None:
        self.results.append(result)
        self.findings.extend(findings)

    def option(self, name: str) -> Any:
        return self.config.getoption(f"stress_{name}")

    def baseline_ids(self) -> set[str]:
        path = self.option("baseline")
        if path is None:
            return set()
        if self._baseline is None:
            from ..errors import ReportError
            from ..report.storage import load_report

            try:
                self._baseline = {f.id for f in load_report(path).findings}
            except ReportError as e:
                raise pytest.UsageError(f"--stress-baseline {path}: {e}") from None
        return set(self._baseline)

    def run_options(self) -> dict[str, Any]:
        """The session's run options, for every stress item and ``stress_fuzz`` call."""
        options = {name: self.option(name) for name in RunOptions.names()}
        if getattr(self.config, "workerinput", None) is not None and options["jobs"] is None:
            options["jobs"] = 0  # an xdist worker has its share of the cores already
        return options

    def report(self) -> Any:
        from ..report.environment import environment
        from ..report.model import Report

        report = Report(
            results=list(self.results), findings=list(self.findings), environment=environment()
        )
        report.settings = {
            "profile": RunOptions(**self.run_options()).resolved_profile,
            "modes": self.option("modes"),
            "device": self.option("device"),
            "seed": self.option("seed"),
            "shard": "/".join(map(str, self.option("shard"))) if self.option("shard") else None,
            "targets": list(dict.fromkeys(r.target for r in self.results)),
        }
        report.complete = True
        return report


# ------------------------------------------------------------------------- collection


def _is_test_module(path: Path) -> bool:
    return path.name.startswith(("test_", "conftest", "_")) or path.name.endswith("_test.py")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".py" or _is_test_module(file_path):
        return (
            None  # test modules are collected by pytest; their targets by pytest_pycollect_makeitem
        )
    try:
        declares = _DECLARES.search(file_path.read_text(errors="replace"))
    except OSError:
        return None
    return StressFile.from_parent(parent, path=file_path) if declares else None


def pytest_pycollect_makeitem(
    collector: pytest.Collector, name: str, obj: object
) -> list[pytest.Item] | None:
    from ..engine.targets import BaseTarget  # the test module imported stress already

    # other files (also collected as modules when named on the command line) are StressFiles
    if isinstance(obj, BaseTarget) and _is_test_module(collector.path):
        return list(_items(collector, obj, name))
    return None


class StressFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from ..engine.discovery import collect_targets

        for target in collect_targets([str(self.path)]):
            yield from _items(self, target, target.name.split(".", 1)[-1])


def _items(parent: pytest.Collector, target: Any, name: str) -> Iterator[pytest.Item]:
    from ..core.modes import resolve_modes

    session: _StressSession = parent.config.stash[_SESSION]
    for mode in resolve_modes(session.option("modes"), session.option("device")):
        if target.runs_in(mode):
            yield StressItem.from_parent(
                parent, name=f"{name}[{mode.label}]", target=target, mode=mode
            )


class StressFailure(Exception):
    """A stress item failed; its message is the findings, without harness frames."""


class StressItem(pytest.Item):
    def __init__(self, *, target: Any, mode: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target, self.mode = target, mode

    def runtest(self) -> None:
        from ..core.outcomes import Status
        from ..engine.runner import run

        session: _StressSession = self.config.stash[_SESSION]
        options = {**session.run_options(), "modes": [self.mode], "jobs": 0}
        report = run([self.target], **options)
        (result,) = report.results
        self.user_properties.append(("stress_status", str(result.status)))
        if result.status in (Status.SKIPPED, Status.UNSUPPORTED):
            pytest.skip(result.reason or str(result.status))
        if result.status == Status.XFAILED:
            pytest.xfail(result.reason or "expected failure found")
        if result.status == Status.XPASSED:
            raise StressFailure(f"[XPASS(strict)] {result.reason}")
        if result.status.fails_run:
            unexpected = report.unexpected
            known = session.baseline_ids()
            if (
                result.status == Status.FAILED
                and known
                and unexpected
                and all(f.id in known for f in unexpected)
            ):
                pytest.xfail(f"known in the baseline: {', '.join(f.id for f in unexpected)}")
            detail = "\n\n".join(str(f) for f in unexpected)
            # the first line is pytest's short summary: it says what failed
            why = result.reason or ", ".join(dict.fromkeys(f.check for f in unexpected))
            raise StressFailure(f"{result.status}: {why}\n{detail}".strip())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, StressFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"stress: {self.name}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("stress_shard")
    for item in items:
        marker = item.get_closest_marker("stress")
        if marker is None:
            continue
        unknown = sorted(set(marker.kwargs) - MARKER_KEYWORDS)
        if marker.args or unknown:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.stress takes keywords only; got "
                f"{'positional arguments ' + repr(marker.args) if marker.args else 'unknown ' + repr(unknown)}; "
                f"accepted: {', '.join(sorted(MARKER_KEYWORDS))}"
            )
        _check_marker_values(item.nodeid, marker.kwargs)
    if shard is None:
        return
    keep = [i for i in items if in_shard(_shard_key(i), shard) or not _sharded(i)]
    dropped = [i for i in items if i not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


_PAIRED = frozenset({"expect", "reason", "reference", "reference_dtype"})


def _check_marker_values(nodeid: str, kwargs: Mapping[str, Any]) -> None:
    """A bad value in the marker stops collection, as a bad key does, not the test at run time.

    Options that only make sense together (``expect`` and ``reason``, ``reference`` and
    ``reference_dtype``) are left to the call: one may be given there and the other here.
    """
    try:
        RunOptions(**{k: x for k, x in kwargs.items() if k in RunOptions.names()})
        FunctionOptions(
            **{k: x for k, x in kwargs.items() if k in FunctionOptions.names() and k not in _PAIRED}
        )
    except StressError as e:
        raise pytest.UsageError(f"{nodeid}: @pytest.mark.stress: {e}") from None


def _sharded(item: pytest.Item) -> bool:
    """Stress items and tests that fuzz through ``stress_fuzz`` are split between shards."""
    return isinstance(item, StressItem) or "stress_fuzz" in getattr(item, "fixturenames", ())


def _shard_key(item: pytest.Item) -> str:
    return item.target.name if isinstance(item, StressItem) else item.nodeid


@pytest.fixture
def stress_fuzz(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``stress_fuzz(fn, **strategies)``: ``stress.fuzz`` with the session's and the marker's options."""
    from ..engine.runner import fuzz

    session: _StressSession = request.config.stash[_SESSION]
    marker = request.node.get_closest_marker("stress")
    options = {
        k: x for k, x in session.run_options().items() if k not in ("scheduler", "memory_budget")
    }
    options.update(marker.kwargs if marker else {})

    def call(fn: Callable[..., Any], **strategies: Any) -> Any:
        from ..engine.targets import default_name

        # named after the test too: two tests fuzzing one function stay apart in merged reports
        name = strategies.pop("name", None) or f"{request.node.nodeid}::{default_name(fn)}"
        return fuzz(fn, name=name, **{**options, **strategies})

    return call


# ------------------------------------------------------------------ reports and xdist


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    stress: _StressSession = config.stash[_SESSION]
    out = stress.option("report")
    if out is None or not (stress.results or stress.worker_dirs):
        return
    from ..report.compare import merge_reports
    from ..report.storage import load_report, write_report

    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand a partial report to the controller
        folder = Path(out) / ".workers" / str(config.workerinput["workerid"])  # type: ignore[attr-defined]
        write_report(stress.report(), folder, html=False)
        workeroutput["stress_report_dir"] = str(folder)
        return
    parts = [(stress.report(), Path(out))] if stress.results else []
    parts += [(load_report(d), d) for d in stress.worker_dirs]
    merged = merge_reports(parts, strict=False) if stress.worker_dirs else parts[0][0]
    write_report(merged, out)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    folder = getattr(node, "workeroutput", {}).get("stress_report_dir")
    if folder:
        node.config.stash[_SESSION].worker_dirs.append(Path(folder))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    stress: _StressSession = config.stash[_SESSION]
    out = stress.option("report")
    if (
        out
        and (stress.results or stress.worker_dirs)
        and getattr(config, "workeroutput", None) is None
    ):
        terminalreporter.write_line(
            f"torch-stress report: {Path(out) / 'report.json'} (and report.md, report.html)"
        )
