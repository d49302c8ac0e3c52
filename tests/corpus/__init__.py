"""A corpus of naive/stable pairs of numerical functions from public bug reports."""

from .pairs import PAIRS, Pair

__all__ = ["PAIRS", "Pair"]
