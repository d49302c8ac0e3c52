"""Listeners told of every target × mode result, wherever the run started (CLI, plugin, tests).

Light on purpose: the pytest plugin registers here without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["LISTENERS"]

# each is called as listener(result, findings) after every target × mode
LISTENERS: list[Callable[[Any, list[Any]], None]] = []
