"""Writing reports atomically, and reading them back with clear errors."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch

from ..errors import ReportError
from .markdown import to_markdown
from .model import Report

__all__ = ["load_report", "write_report"]


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


def write_report(report: Report, directory: str | os.PathLike[str], *, html: bool = True) -> Path:
    """Write ``report.json``, ``report.md``, ``report.html`` and the findings' tensors into ``directory``.

    ``html=False`` skips the page (plots take a moment): the runner writes it once, at the end.
    """
    out = Path(directory)
    for i, f in enumerate(report.findings):
        if f.inputs is not None and f.inputs_file is None:
            name = f"findings/{i:03d}.pt"
            atomic_write(out / name, functools.partial(_save, f.inputs))
            f.inputs_file = name
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False)
    atomic_write(out / "report.json", lambda fh: fh.write(text.encode()))
    atomic_write(out / "report.md", lambda fh: fh.write(to_markdown(report).encode()))
    if html:
        from .html import to_html  # matplotlib loads only when a page is written

        page = to_html(report)
        atomic_write(out / "report.html", lambda fh: fh.write(page.encode()))
    return out / "report.json"


def load_report(path: str | os.PathLike[str]) -> Report:
    """Read a report written by :func:`write_report`; a directory means its ``report.json``."""
    p = Path(path)
    if p.is_dir():
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
    return torch.load(report_dir / inputs_file, weights_only=True)
