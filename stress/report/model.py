"""What a run produces: findings, per target × mode results, and the report that holds them."""

from __future__ import annotations

import datetime as _dt
import math
import platform
import subprocess
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from ..errors import ReportError

__all__ = ["SCHEMA_VERSION", "Finding", "Report", "Result", "environment"]

SCHEMA_VERSION = 1

# statuses of one target × mode
PASSED, FAILED, XFAILED, XPASSED = "passed", "failed", "xfailed", "xpassed"
SKIPPED, UNSUPPORTED = "skipped", "unsupported"
BAD_STATUSES = frozenset({FAILED, XPASSED})

_FIGURE_LABELS = {
    "max_abs_output": "max |output|",
    "grad_norm": "grad norm",
    "error": "error",
    "error_eps": "error (eps)",
    "grad_error": "grad error",
}


def describe_diagnosis(d: dict[str, Any]) -> str:
    """One line: the op, its phase and user line, and the mechanism's sentence."""
    where = f" at {d['location']}" if d.get("location") else ""
    via = f", in {d['node']}" if d.get("node") else ""
    return f"first {d['kind']} value from {d['op']} [{d['phase']}{via}, {d['dtype']}]{where}: {d['explanation']}"


def _fmt_figures(figures: dict[str, float]) -> str:
    return ", ".join(f"{_FIGURE_LABELS.get(k, k)} = {v:.4g}" for k, v in figures.items())


@dataclass
class Finding:
    """One failed check with its minimal counterexample, enough to replay it."""

    target: str
    mode: str
    check: str
    message: str
    counterexample: dict[str, str]
    figures: dict[str, float] = field(default_factory=dict)
    expected: bool = False
    reproduce_blob: str | None = None
    traceback: str | None = None
    inputs_file: str | None = None
    source: str | None = None  # where the target can be imported from again, for replay
    diagnosis: dict[str, Any] | None = None  # the first bad op, its line, statistics and mechanism
    inputs: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.target}[{self.mode}]:{self.check}"

    @property
    def replay(self) -> str | None:
        """The command that re-runs this finding from its stored counterexample."""
        return f"stress replay REPORT '{self.id}'" if self.source and self.inputs_file else None

    def __str__(self) -> str:
        tag = "expected" if self.expected else "UNEXPECTED"
        args = ", ".join(f"{k}={v}" for k, v in self.counterexample.items())
        lines = [
            f"{self.check} failed for {self.target} in {self.mode} ({tag})",
            f"  {self.message}",
            f"  counterexample: {args}",
        ]
        if self.figures:
            lines.append(f"  figures: {_fmt_figures(self.figures)}")
        if self.diagnosis:
            lines.append(f"  diagnosis: {describe_diagnosis(self.diagnosis)}")
        if self.traceback:
            lines.append("  " + self.traceback.strip().splitlines()[-1])
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("inputs")
        d["id"] = self.id
        d["replay"] = self.replay
        d["figures"] = {k: _json_float(v) for k, v in self.figures.items()}
        if self.diagnosis:
            d["diagnosis"] = _json_safe(self.diagnosis)
        return d


@dataclass
class Result:
    """The outcome of one target in one mode, with the worst figures over all examples."""

    target: str
    mode: str
    device: str
    status: str
    expected: str
    examples: int = 0
    seconds: float = 0.0
    worst: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)  # every check that ran
    checks_failed: list[str] = field(default_factory=list)
    reason: str | None = None
    grad_norms: list[float] = field(default_factory=list)  # per example, for distributions
    stability: dict[str, Any] | None = None  # failure rate over log-magnitude × a scalar parameter
    source: str | None = None  # where the target can be imported from again

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["worst"] = {k: _json_float(v) for k, v in self.worst.items()}
        d["grad_norms"] = [_json_float(v) for v in self.grad_norms]
        return d


def _json_float(v: float) -> float | str:
    """JSON has no inf/nan; keep them as strings so the file stays standard JSON."""
    return v if math.isfinite(v) else str(v)


def _from_json_float(v: float | str) -> float:
    return float(v)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _from_json_safe(obj: Any) -> Any:
    if obj in ("inf", "-inf", "nan"):
        return float(obj)
    if isinstance(obj, dict):
        return {k: _from_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json_safe(v) for v in obj]
    return obj


def environment() -> dict[str, Any]:
    """Where a run happened: compared before two reports are compared."""
    import hypothesis

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "hypothesis": hypothesis.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        env["git_commit"] = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    return env


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

    @property
    def ok(self) -> bool:
        """True when every expectation was met: no unexpected finding, no missed expected failure."""
        return not any(r.status in BAD_STATUSES for r in self.results)

    @property
    def unexpected(self) -> list[Finding]:
        return [f for f in self.findings if not f.expected]

    def result(self, target: str, mode: str) -> Result:
        for r in self.results:
            if r.target == target and r.mode == mode:
                return r
        known = sorted({f"{r.target}[{r.mode}]" for r in self.results})
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
                "status": r.status,
                "examples": r.examples,
                "checks failed": ", ".join(r.checks_failed),
                **{_FIGURE_LABELS.get(k, k): v for k, v in r.worst.items()},
            }
            for r in self.results
        ]
        return pd.DataFrame(rows)

    def __str__(self) -> str:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        head = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return f"Report {self.run_id}: {'OK' if self.ok else 'FAILED'} ({head}; {len(self.findings)} findings)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "created": self.created,
            "complete": self.complete,
            "ok": self.ok,
            "environment": self.environment,
            "settings": self.settings,
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
                f"report schema_version={version!r} is not supported; this torch-stress reads version {SCHEMA_VERSION}"
            )
        try:
            results = [_load(Result, r, floats="worst") for r in data["results"]]
            for r in results:
                r.grad_norms = [_from_json_float(v) for v in r.grad_norms]
            findings = [_load(Finding, f, floats="figures") for f in data["findings"]]
            for f in findings:
                f.diagnosis = _from_json_safe(f.diagnosis)
            return cls(
                results=results,
                findings=findings,
                settings=data["settings"],
                environment=data["environment"],
                run_id=data["run_id"],
                created=data["created"],
                complete=data["complete"],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ReportError(f"corrupt report: {type(e).__name__}: {e}") from None


def _load(cls: type, data: dict[str, Any], floats: str) -> Any:
    names = {f.name for f in fields(cls)} - {"inputs"}
    kwargs = {k: v for k, v in data.items() if k in names}
    kwargs[floats] = {k: _from_json_float(v) for k, v in kwargs.get(floats, {}).items()}
    return cls(**kwargs)
