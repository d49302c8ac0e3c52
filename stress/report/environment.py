"""Where a run happened: compared before two reports are compared."""

from __future__ import annotations

import platform
import subprocess
from typing import Any

__all__ = ["environment"]


def git_commit() -> str | None:
    """The commit of the working directory, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Python, torch, Hypothesis, CUDA and GPU versions, and the git commit."""
    import hypothesis
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "hypothesis": hypothesis.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
    }
