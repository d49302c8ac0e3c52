"""torch-stress: property-based numerical stress testing for PyTorch.

import stress
from stress import st

report = stress.fuzz(my_loss, x=st.logits(("B", "C")), y=st.targets(("B",), num_classes="C"))
assert report.ok, report.findings[0]
"""

import logging

from . import strategies as st
from .errors import InvalidArgument as InvalidArgument
from .errors import ReportError as ReportError
from .errors import StressError as StressError
from .guard import GuardedStep as GuardedStep
from .guard import StepOutcome as StepOutcome
from .modes import DEFAULT_TOLERANCES as DEFAULT_TOLERANCES
from .modes import Mode as Mode
from .precision import compare_modes as compare_modes
from .replay import replay as replay
from .report import Finding as Finding
from .report import Report as Report
from .report import load_report as load_report
from .runner import PROFILES as PROFILES
from .runner import fuzz as fuzz
from .runner import run as run
from .steps import StepTarget as StepTarget
from .steps import fuzz_step as fuzz_step
from .steps import guarded_step as guarded_step
from .steps import step_target as step_target
from .targets import Target as Target
from .targets import target as target

__version__ = "0.1.0"

# a library logs, the application decides what is shown (GuardedStep warns on "stress.guard")
logging.getLogger("stress").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_TOLERANCES",
    "PROFILES",
    "Finding",
    "GuardedStep",
    "InvalidArgument",
    "Mode",
    "Report",
    "ReportError",
    "StepOutcome",
    "StepTarget",
    "StressError",
    "Target",
    "compare_modes",
    "fuzz",
    "fuzz_step",
    "guarded_step",
    "load_report",
    "replay",
    "run",
    "st",
    "step_target",
    "target",
]
