"""Run the harness over the test corpus of naive/stable pairs: detection, false alarms and the
time to the first finding. Used by ``benchmarks/test_corpus.py`` and runnable alone::

    python benchmarks/corpus_run.py --examples 300 --jobs 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from corpus import PAIRS, Pair  # noqa: E402 - tests/corpus, the pairs and their triggers

import stress  # noqa: E402

__all__ = ["MODES", "PAIRS", "Tally", "evaluate"]

MODES = ("fp32", "fp16", "bf16", "amp-fp16", "amp-bf16")


@dataclass
class Tally:
    """Detection and false alarms over the corpus."""

    expected: int = 0  # naive failures the corpus states (pair × mode)
    found: int = 0
    missed: list[str] = field(default_factory=list)
    extra: list[str] = field(
        default_factory=list
    )  # naive failures beyond fails_in (not counted against)
    stable_runs: int = 0
    false_alarms: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)  # stable twins with limit outcomes only
    first_finding_seconds: list[float] = field(default_factory=list)
    # worst error of the stable twins, per mode, in units of the mode's output tolerance
    stable_error: dict[str, float] = field(default_factory=dict)
    stable_grad_error: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        median = (
            statistics.median(self.first_finding_seconds)
            if self.first_finding_seconds
            else float("nan")
        )
        return (
            f"naive failures found: {self.found} of {self.expected}; "
            f"false alarms on stable twins: {len(self.false_alarms)} of {self.stable_runs} runs; "
            f"median time to the first finding: {median:.2f} s"
        )


def _target(pair: Pair, fn: Any, name: str) -> Any:
    options: dict[str, Any] = {"name": name}
    if pair.dims:
        options["dims"] = dict(pair.dims)
    if pair.wrt:
        options["wrt"] = pair.wrt
    return stress.target(fn, **options, **pair.strategies())


def evaluate(
    pairs: list[Pair],
    examples: int,
    jobs: int | None,
    seed: int | None,
    modes: tuple[str, ...] = MODES,
) -> Tally:
    tally = Tally()
    targets = []
    for pair in pairs:
        targets.append(_target(pair, pair.naive, f"{pair.name}.naive"))
        targets.append(_target(pair, pair.stable, f"{pair.name}.stable"))
    report = stress.run(
        targets, modes=modes, profile="ci", max_examples=examples, seed=seed, jobs=jobs
    )
    by_name = {p.name: p for p in pairs}
    for r in report.results:
        name, _, kind = r.target.rpartition(".")
        pair = by_name[name]
        fails = [f for f in report.findings_for(r.target, r.mode) if f.outcome == "fail"]
        if kind == "naive":
            if r.mode in pair.fails_in:
                tally.expected += 1
                if fails:
                    tally.found += 1
                    tally.first_finding_seconds.append(r.seconds / max(len(fails), 1))
                else:
                    tally.missed.append(f"{name}[{r.mode}] {r.status}")
            elif fails:
                tally.extra.append(f"{name}[{r.mode}] {', '.join(f.check for f in fails)}")
        else:
            tally.stable_runs += 1
            if fails or r.status.fails_run:
                detail = "; ".join(f.message[:160] for f in fails) or str(r.reason)
                tally.false_alarms.append(f"{name}[{r.mode}] {r.status}: {detail}")
            elif r.status == "limit":
                tally.limits.append(f"{name}[{r.mode}]")
            else:  # the worst error of a passing twin: what the tolerance must allow
                mode = stress.Mode(r.mode)
                for figure, store, tol in (
                    ("error", tally.stable_error, mode.tolerance()),
                    ("grad_error", tally.stable_grad_error, mode.tolerance()),
                ):
                    value = r.worst.get(figure, 0.0)
                    if value == value and value != float("inf"):
                        store[r.mode] = max(store.get(r.mode, 0.0), value / tol)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("-k", default="")
    args = parser.parse_args()
    start = time.perf_counter()
    pairs = [p for p in PAIRS if args.k in p.name]
    tally = evaluate(pairs, args.examples, args.jobs, args.seed)
    print(tally.summary(), f"({time.perf_counter() - start:.0f} s)")
    print("worst stable-twin error ÷ the mode's output tolerance (outputs; gradients):")
    for mode in MODES:
        print(
            f"  {mode:9s} {tally.stable_error.get(mode, 0):.3g}; {tally.stable_grad_error.get(mode, 0):.3g}"
        )
    for title, items in (
        ("missed", tally.missed),
        ("false alarms", tally.false_alarms),
        ("limits on stable twins", tally.limits),
        ("found beyond fails_in", tally.extra),
    ):
        if items:
            print(f"\n{title}:")
            for item in items:
                print("  ", item)


if __name__ == "__main__":
    main()
