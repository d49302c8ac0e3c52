"""torch-stress: property-based numerical stress testing for PyTorch.

    import stress
    from stress import st

    report = stress.fuzz(my_loss, x=st.logits(("B", "C")), y=st.targets(("B",), num_classes="C"))
    assert report.ok, report

This module is the only public surface; the package behind it is laid out by layer, each
importing only from the layers above it in this list:

``core/``          what a check is: modes and dtype facts, numerics, options, outcomes,
                   recipes and strategies (``stress.st``), the checks themselves
``engine/``        how a target is searched: targets, float64 reference, evaluation, the
                   Hypothesis search, jobs, workers and the runner
``steps/``         training steps: ``GuardedStep`` (importable alone), faults, step sessions
``analysis/``      what a finding means: diagnosis, stability maps, precision comparison
``report/``        the JSON model, its Markdown and HTML views, storage, comparison
``integrations/``  the CLI, the pytest plugin, target discovery and replay

Names load on first use, so ``from stress import GuardedStep`` in a training script pulls in
neither Hypothesis nor pandas nor matplotlib.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# name -> (module, attribute); the attribute None means the module itself
_PUBLIC: dict[str, tuple[str, str | None]] = {
    "DEFAULT_TOLERANCES": (".core.modes", "DEFAULT_TOLERANCES"),
    "GRADIENT_TOLERANCES": (".core.modes", "GRADIENT_TOLERANCES"),
    "PROFILES": (".engine.profiles", "PROFILES"),
    "Expect": (".core.outcomes", "Expect"),
    "Finding": (".report.model", "Finding"),
    "FunctionOptions": (".core.options", "FunctionOptions"),
    "GuardedStep": (".steps.guard", "GuardedStep"),
    "InvalidArgument": (".errors", "InvalidArgument"),
    "Mode": (".core.modes", "Mode"),
    "Outcome": (".core.outcomes", "Outcome"),
    "Report": (".report.model", "Report"),
    "ReportError": (".errors", "ReportError"),
    "Result": (".report.model", "Result"),
    "RunOptions": (".core.options", "RunOptions"),
    "Status": (".core.outcomes", "Status"),
    "StepOptions": (".core.options", "StepOptions"),
    "StepOutcome": (".steps.guard", "StepOutcome"),
    "StepTarget": (".steps.session", "StepTarget"),
    "StressError": (".errors", "StressError"),
    "Target": (".engine.targets", "Target"),
    "compare_modes": (".analysis.precision", "compare_modes"),
    "fuzz": (".engine.runner", "fuzz"),
    "fuzz_step": (".steps.session", "fuzz_step"),
    "guarded_step": (".steps.session", "guarded_step"),
    "load_report": (".report.storage", "load_report"),
    "replay": (".integrations.replay", "replay"),
    "run": (".engine.runner", "run"),
    "st": (".core.strategies", None),
    "step_target": (".steps.session", "step_target"),
    "target": (".engine.targets", "target"),
}

__all__ = sorted(_PUBLIC)

# a library logs, the application decides what is shown (GuardedStep warns on "stress.guard")
logging.getLogger("stress").addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'stress' has no attribute {name!r}")
    module_name, attribute = _PUBLIC[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:
    from .analysis.precision import compare_modes as compare_modes
    from .core import strategies as st  # noqa: F401 - the `stress.st` namespace
    from .core.modes import DEFAULT_TOLERANCES as DEFAULT_TOLERANCES
    from .core.modes import GRADIENT_TOLERANCES as GRADIENT_TOLERANCES
    from .core.modes import Mode as Mode
    from .core.options import FunctionOptions as FunctionOptions
    from .core.options import RunOptions as RunOptions
    from .core.options import StepOptions as StepOptions
    from .core.outcomes import Expect as Expect
    from .core.outcomes import Outcome as Outcome
    from .core.outcomes import Status as Status
    from .engine.profiles import PROFILES as PROFILES
    from .engine.runner import fuzz as fuzz
    from .engine.runner import run as run
    from .engine.targets import Target as Target
    from .engine.targets import target as target
    from .errors import InvalidArgument as InvalidArgument
    from .errors import ReportError as ReportError
    from .errors import StressError as StressError
    from .integrations.replay import replay as replay
    from .report.model import Finding as Finding
    from .report.model import Report as Report
    from .report.model import Result as Result
    from .report.storage import load_report as load_report
    from .steps.guard import GuardedStep as GuardedStep
    from .steps.guard import StepOutcome as StepOutcome
    from .steps.session import StepTarget as StepTarget
    from .steps.session import fuzz_step as fuzz_step
    from .steps.session import guarded_step as guarded_step
    from .steps.session import step_target as step_target
