"""Writing reports atomically, journaling results as they finish, and reading either back.

A run appends each finished target × mode to ``journal.jsonl`` (one JSON line, flushed and
fsynced; a finding's tensors go to ``findings/NNN.pt`` first), and renders ``report.json``,
``report.md`` and ``report.html`` once, at the end — also when it is interrupted. A run killed
outright leaves its journal, which :func:`load_report` reads as a partial report.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import ReportError
from .markdown import to_markdown
from .model import Finding, Report, Result, finding_from_dict

__all__ = [
    "Journal",
    "atomic_write",
    "load_inputs",
    "load_report",
    "publish_report",
    "write_report",
]

JOURNAL = "journal.jsonl"


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(obj: object, fh: IO[bytes]) -> None:
    torch.save(obj, fh)


def save_inputs(findings: list[Finding], directory: Path, start: int) -> int:
    """Store each finding's tensors as ``findings/NNN.pt``; returns the next free number."""
    n = start
    for f in findings:
        if f.inputs is not None and f.inputs_file is None:
            name = f"findings/{n:03d}.pt"
            atomic_write(directory / name, functools.partial(_save, f.inputs))
            f.inputs_file = name
            n += 1
    return n


class Journal:
    """The results of a run, appended as they finish: what survives any interruption."""

    def __init__(self, directory: Path, report: Report) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.next_file = 0
        self.fh = open(directory / JOURNAL, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        head = {
            k: report.to_dict()[k]
            for k in ("schema_version", "run_id", "created", "settings", "environment")
        }
        self._line({"run": head})

    def _line(self, obj: dict[str, Any]) -> None:
        self.fh.write(json.dumps(obj, allow_nan=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def append(self, result: Result, findings: list[Finding]) -> None:
        self.next_file = save_inputs(findings, self.directory, self.next_file)
        self._line({"result": result.to_dict(), "findings": [f.to_dict() for f in findings]})

    def close(self) -> None:
        self.fh.close()


def read_journal(path: Path) -> Report:
    """A partial report from a journal (the last line may be cut short: it is skipped)."""
    report: Report | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "run" in entry:
            head = entry["run"]
            report = Report.from_dict({**head, "complete": False, "results": [], "findings": []})
        elif report is not None:
            report.results.append(Result.from_dict(entry["result"]))
            report.findings += [finding_from_dict(f) for f in entry["findings"]]
    if report is None:
        raise ReportError(f"{str(path)!r} is not a torch-stress journal")
    return report


def write_report(report: Report, directory: str | os.PathLike[str], *, html: bool = True) -> Path:
    """Write ``report.json``, ``report.md``, ``report.html`` and the findings' tensors into ``directory``."""
    out = Path(directory)
    taken = len(list((out / "findings").glob("*.pt"))) if (out / "findings").is_dir() else 0
    save_inputs(report.findings, out, taken)
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False)
    atomic_write(out / "report.json", lambda fh: fh.write(text.encode()))
    atomic_write(out / "report.md", lambda fh: fh.write(to_markdown(report, out).encode()))
    if html:
        from .html import to_html  # matplotlib and jinja2 load only when a page is written

        page = to_html(report, out)
        atomic_write(out / "report.html", lambda fh: fh.write(page.encode()))
    return out / "report.json"


def publish_report(report: Report, directory: str | os.PathLike[str]) -> Path:
    """Write a whole report beside ``directory`` and move it into place: a reader, or a failure
    half-way, never sees a partial folder."""
    out = Path(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_report(report, staging)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=staging.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / "report.json"


def load_report(path: str | os.PathLike[str]) -> Report:
    """Read a report written by :func:`write_report`; a directory means its ``report.json``, or
    its journal when the run never got to write one."""
    p = Path(path)
    if p.is_dir():
        if not (p / "report.json").exists() and (p / JOURNAL).exists():
            return read_journal(p / JOURNAL)
        p = p / "report.json"
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ReportError(f"no report at {str(p)!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"cannot read report {str(p)!r}: {e}") from None
    return Report.from_dict(data)


def load_inputs(report_dir: Path, inputs_file: str) -> dict[str, object]:
    """The stored counterexample of a finding, loaded safely (``weights_only=True``)."""
    loaded: dict[str, object] = torch.load(report_dir / inputs_file, weights_only=True)
    return loaded
