"""Hypothesis settings profiles of a search: ``ci``, ``dev`` and ``thorough``."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from ..core.options import PROFILE_NAMES
from ..core.validation import check_choice

__all__ = ["PROFILES", "search_settings"]

_COMMON: dict[str, Any] = dict(
    deadline=None,  # the engine enforces its own per-example deadline by stopping the worker
    verbosity=Verbosity.quiet,
    print_blob=True,
    report_multiple_bugs=False,  # one failure per search: the follow-up searches find the others
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
_DB_DIR = ".stress/examples"
PROFILES: dict[str, dict[str, Any]] = {
    # reproducible and side-effect free: no example database, each search seeded from its key
    "ci": dict(max_examples=30, derandomize=True, database=None),
    # the local loop: failing examples are saved and replayed first on the next run
    "dev": dict(max_examples=100, database=None),
    # nightly: a long targeted search
    "thorough": dict(max_examples=1000, database=None),
}
assert tuple(PROFILES) == PROFILE_NAMES
for _name, _opts in PROFILES.items():
    settings.register_profile(f"stress-{_name}", **_COMMON, **_opts)


def search_settings(profile: str, max_examples: int | None, seed: int | None) -> settings:
    """The Hypothesis settings of a search: the profile, then the overrides."""
    check_choice("profile", profile, PROFILE_NAMES)
    opts: dict[str, Any] = {}
    if max_examples is not None:
        opts["max_examples"] = max_examples
    if profile != "ci":
        opts["database"] = DirectoryBasedExampleDatabase(
            os.environ.get("STRESS_EXAMPLE_DB", _DB_DIR)
        )
    if seed is not None:
        opts["derandomize"] = False
    return settings(settings.get_profile(f"stress-{profile}"), **opts)
