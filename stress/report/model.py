"""What a run produces: findings, per target × mode results, and the report that holds them."""

from __future__ import annotations

import datetime as _dt
import math
import re
import shlex
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..core.outcomes import Expect, Outcome, Status
from ..errors import ReportError
from .render import shown_values

__all__ = ["SCHEMA_VERSION", "Finding", "Report", "Result"]

SCHEMA_VERSION = 2

FIGURE_LABELS = {
    "max_abs_output": "max |output|",
    "grad_norm": "grad norm",
    "error": "error",
    "error_eps": "error (eps)",
    "grad_error": "grad error",
}


@dataclass
class Finding:
    """One failure (or limit) of one check on one output, with its minimal counterexample."""

    target: str
    mode: str
    check: str
    message: str
    counterexample: dict[str, str]
    key: str = ""  # the output or gradient, e.g. "out" or "grad['x']"; the type of an exception
    outcome: Outcome = Outcome.FAIL
    figures: dict[str, float] = field(default_factory=dict)
    expected: bool = False
    reproduce_blob: str | None = None
    traceback: str | None = None
    inputs_file: str | None = None
    source: str | None = None  # where the target can be imported from again, for replay
    diagnosis: dict[str, Any] | None = None  # the first bad op, its line, statistics and mechanism
    shrunk: bool = True  # False: as first found (a limit; an expected failure in the ci profile)
    # the counterexample's tensors of at most a few elements, by value: {"x": "[[1.541]]"}
    values: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.inputs and not self.values:
            self.values = shown_values(self.inputs)

    @property
    def id(self) -> str:
        suffix = f"@{self.key}" if self.key and self.key != "out" else ""
        return f"{self.target}[{self.mode}]:{self.check}{suffix}"

    @property
    def counts(self) -> bool:
        """Whether the finding decides the run: a real failure nobody expected."""
        return self.outcome == Outcome.FAIL and not self.expected

    def replay_command(self, report_dir: str | None = None) -> str | None:
        """The command that re-runs this finding from its stored counterexample."""
        if not (self.source and self.inputs_file):
            return None
        return f"stress replay {_shell_word(report_dir or '<report-dir>')} {_shell_word(self.id)}"

    def __str__(self) -> str:
        from .render import finding_text

        return finding_text(self)

    __repr__ = __str__

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("inputs")
        d["id"] = self.id
        d["outcome"] = str(self.outcome)
        d["figures"] = {k: json_float(x) for k, x in self.figures.items()}
        if self.diagnosis:
            d["diagnosis"] = json_safe(self.diagnosis)
        return d


@dataclass
class Result:
    """The verdict on one target in one mode, with the worst figures over all examples."""

    target: str
    mode: str
    device: str
    status: Status
    expected: Expect = field(default_factory=Expect)
    examples: int = 0  # drawn by the search
    shrinking: int = 0  # run while shrinking failures
    over_budget: int = 0  # not run: over the memory budget
    seconds: float = 0.0
    stability_seconds: float = 0.0
    worst: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)  # every check that ran
    checks_failed: list[str] = field(default_factory=list)
    reason: str | None = None  # why this status: the declared reason, or what the verdict found
    grad_norms: list[float] = field(default_factory=list)  # per example, for distributions
    stability: dict[str, Any] | None = None  # failure rate over log-magnitude × a scalar parameter
    source: str | None = None  # where the target can be imported from again
    options: dict[str, Any] = field(default_factory=dict)  # the target's options, as run

    @property
    def id(self) -> str:
        return f"{self.target}[{self.mode}]"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        d["expected"] = self.expected.to_json()
        d["worst"] = {k: json_float(x) for k, x in self.worst.items()}
        d["grad_norms"] = [json_float(x) for x in self.grad_norms]
        d["options"] = json_safe(self.options)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        r = _load(cls, data)
        r.status = Status(r.status)
        r.expected = Expect.from_json(data.get("expected", "pass"))
        r.worst = {k: float(x) for k, x in r.worst.items()}
        r.grad_norms = [float(x) for x in r.grad_norms]
        return r


def json_float(x: float) -> float | str:
    """JSON has no inf/nan; keep them as strings so the file stays standard JSON."""
    return x if math.isfinite(x) else str(x)


def json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return json_float(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(x) for k, x in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(x) for x in obj]
    return obj


def from_json_safe(obj: Any) -> Any:
    if obj in ("inf", "-inf", "nan"):
        return float(obj)
    if isinstance(obj, dict):
        return {k: from_json_safe(x) for k, x in obj.items()}
    if isinstance(obj, list):
        return [from_json_safe(x) for x in obj]
    return obj


@dataclass
class Report:
    """All results and findings of a run. JSON is the source of truth; see ``to_dict``."""

    results: list[Result] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    run_id: str = field(
        default_factory=lambda: _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    )
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())
    complete: bool = False
    running: list[str] = field(default_factory=list)  # what was running when the run stopped

    @property
    def ok(self) -> bool:
        """True when every expectation was met: no unexpected failure, no missed expected one,
        no timeout, crash or harness error."""
        return not any(r.status.fails_run for r in self.results)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with every failure written out when the run is not ``ok``:
        the pytest idiom (``assert report.ok, report`` would show pytest's 240-character repr)."""
        __tracebackhide__ = True
        if not self.ok:
            raise AssertionError(str(self))

    @property
    def unexpected(self) -> list[Finding]:
        """The findings that fail the run: real failures nobody expected."""
        return [f for f in self.findings if f.counts]

    def result(self, target: str, mode: str) -> Result:
        for r in self.results:
            if r.target == target and r.mode == mode:
                return r
        known = sorted(r.id for r in self.results)
        raise KeyError(f"no result for {target}[{mode}]; results are {known}")

    def findings_for(self, target: str, mode: str | None = None) -> list[Finding]:
        return [f for f in self.findings if f.target == target and (mode is None or f.mode == mode)]

    def summary(self) -> Any:
        """A pandas DataFrame: one row per target × mode with status, examples and worst figures."""
        import pandas as pd

        rows = [
            {
                "target": r.target,
                "mode": r.mode,
                "status": str(r.status),
                "examples": r.examples,
                "shrinking": r.shrinking,
                "checks failed": ", ".join(r.checks_failed),
                **{FIGURE_LABELS.get(k, k): x for k, x in r.worst.items()},
            }
            for r in self.results
        ]
        return pd.DataFrame(rows)

    def __str__(self) -> str:
        from .render import report_text

        return report_text(self)

    __repr__ = __str__

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "created": self.created,
            "complete": self.complete,
            "ok": self.ok,
            "running": self.running,
            "environment": self.environment,
            "settings": json_safe(self.settings),
            "results": [r.to_dict() for r in self.results],
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        if not isinstance(data, dict) or "schema_version" not in data:
            raise ReportError("not a torch-stress report: the JSON has no 'schema_version'")
        version = data["schema_version"]
        if version != SCHEMA_VERSION:
            raise ReportError(
                f"report schema_version={version!r} is not supported; this torch-stress reads version "
                f"{SCHEMA_VERSION} (run it again, or `stress report` it with the torch-stress that wrote it)"
            )
        try:
            return cls(
                results=[Result.from_dict(r) for r in data["results"]],
                findings=[finding_from_dict(f) for f in data["findings"]],
                settings=from_json_safe(data["settings"]),
                environment=data["environment"],
                run_id=data["run_id"],
                created=data["created"],
                complete=data["complete"],
                running=list(data.get("running", [])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ReportError(f"corrupt report: {type(e).__name__}: {e}") from None


def finding_from_dict(data: dict[str, Any]) -> Finding:
    f = _load(Finding, data)
    f.outcome = Outcome(f.outcome)
    f.figures = {k: float(x) for k, x in f.figures.items()}
    f.diagnosis = from_json_safe(f.diagnosis)
    return f


def _load(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)} - {"inputs"}
    return cls(**{k: x for k, x in data.items() if k in names})


def _shell_word(text: str) -> str:
    """``text`` quoted for a POSIX shell, readably: ``'…'``, or ``"…"`` around a single quote
    (``grad['x']``), falling back to :func:`shlex.quote`."""
    if "'" in text and not re.search(r'["$`\\!]', text):
        return f'"{text}"'
    return shlex.quote(text)
