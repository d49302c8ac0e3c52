"""Finding targets: ``.py`` files, folders of them, and ``module:function`` references."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import InvalidArgument
from .targets import BaseTarget

__all__ = ["collect_targets", "load_object", "load_target"]


def _import_file(path: Path) -> ModuleType:
    """Import a ``.py`` file as a module (once per process: a second call returns it)."""
    name = f"stress_suite_{path.stem}"
    loaded = sys.modules.get(name)
    stamp = path.stat().st_mtime_ns if path.exists() else None
    if (
        loaded is not None
        and getattr(loaded, "__file__", None) == str(path.resolve())
        and getattr(loaded, "__stress_stamp__", None) == stamp
    ):
        return loaded  # imported already, unchanged since
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    module.__stress_stamp__ = stamp  # type: ignore[attr-defined]
    sys.modules[name] = module
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)  # lets a suite import helpers that sit beside it
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise InvalidArgument(f"cannot import {str(path)!r}: {_where(e)}") from e
    return module


def _where(e: BaseException) -> str:
    """``SyntaxError: invalid syntax (suite.py:3)``: the error and the line it was raised at."""
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} ({e.filename}:{e.lineno})"
    frames = traceback.extract_tb(e.__traceback__)
    at = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {e}{at}"


def _targets_in(module: ModuleType, prefix: str, origin: str) -> list[BaseTarget]:
    found: list[BaseTarget] = []
    for attr, value in vars(module).items():
        if isinstance(value, BaseTarget):
            value.source = f"{origin}:{attr}"
            if not value.named:
                value.name, value.named = f"{prefix}.{attr}", True
            found.append(value)
    return found


def load_target(source: str, name: str) -> BaseTarget:
    """The target at ``source`` (``file.py:attr`` or ``module:attr``), named as it was in the run."""
    target = load_object(source)
    if not isinstance(target, BaseTarget):
        raise InvalidArgument(f"{source} is not a @stress.target or @stress.step_target")
    target.source, target.name, target.named = source, name, True
    return target


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.py") if not p.name.startswith("_"))
    return [path]


def collect_targets(paths: Iterable[str]) -> list[BaseTarget]:
    """Every Target defined at module level in the given files, folders or module names."""
    targets: list[BaseTarget] = []
    for raw in paths:
        p = Path(raw)
        if p.exists():
            for f in _files(p):
                targets += _targets_in(_import_file(f), f.stem, str(f.resolve()))
        elif p.suffix == ".py" or "/" in raw:
            raise InvalidArgument(
                f"no such file or directory {raw!r}; give .py files, folders of them, or module names"
            )
        else:
            targets += _targets_in(_import_module(raw), raw.rsplit(".", 1)[-1], raw)
    return targets


def _import_module(name: str) -> ModuleType:
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise InvalidArgument(f"cannot import module {name!r}: {e}") from None


def load_object(ref: str) -> Any:
    """Resolve ``module:function`` or ``path/to/file.py:function``."""
    module_ref, sep, attr = ref.rpartition(":")
    if not sep or not module_ref or not attr:
        raise InvalidArgument(f"expected 'module:function' or 'file.py:function', got {ref!r}")
    if module_ref.endswith(".py") and not Path(module_ref).exists():
        raise InvalidArgument(f"no such file {module_ref!r}")
    module = (
        _import_file(Path(module_ref)) if module_ref.endswith(".py") else _import_module(module_ref)
    )
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        close = difflib.get_close_matches(attr, public, n=5) or public[:10]
        more = f" and {len(public) - len(close)} more" if len(public) > len(close) else ""
        raise InvalidArgument(
            f"module {module_ref!r} has no attribute {attr!r}; callables there include "
            f"{', '.join(close) or 'none'}{more}"
        ) from None
    return obj
