"""Detection and false alarms over the test corpus of 39 naive/stable pairs (``nox -s bench``).

300 examples per mode, every pair, both versions, five modes: the naive failures found (of those
the corpus states, each proved by a trigger in ``tests/test_corpus_triggers.py``), the runs of
stable twins with any failure (false alarms), and the median time to the first finding.
"""

from __future__ import annotations

from typing import Any

from corpus_run import PAIRS, evaluate  # benchmarks/corpus_run.py


def test_corpus_detection_and_false_alarms(benchmark: Any, quick: bool) -> None:
    pairs = PAIRS[:4] if quick else PAIRS
    examples = 20 if quick else 300
    tally = benchmark.pedantic(evaluate, args=(pairs, examples, None, None), rounds=1, iterations=1)
    print("\n" + tally.summary())
    for title, items in (("missed", tally.missed), ("false alarms", tally.false_alarms)):
        for item in items:
            print(f"  {title}: {item}")
    benchmark.extra_info.update(
        found=tally.found,
        expected=tally.expected,
        false_alarms=len(tally.false_alarms),
        stable_runs=tally.stable_runs,
    )
    assert tally.expected and tally.stable_runs
    if not quick:
        assert not tally.false_alarms
