"""Measure the rate behind every ``Expect.may_fail`` cell of the suites (suites/README.md):
the fraction of seeds whose search finds one of the cell's checks failing.

    python suites/_rates.py                      # may-fail cells with no rate yet, 1000 × 20 seeds
    python suites/_rates.py --all -k sdpa        # re-measure cells that have one
    python suites/_rates.py --examples 200 --jobs 2

Each (cell, seed) search stops at its first failure, so cells that are found quickly cost little.
The printed table is what goes beside each cell as ``rate=``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    import stress
    from stress import Mode
    from stress.core.options import MODE_NAMES
    from stress.engine.discovery import collect_targets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only targets whose name contains this text")
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--all", action="store_true", help="also cells that already have a rate")
    args = parser.parse_args(argv)

    cells = [
        (t, m, t.expectation(Mode(m)))
        for t in collect_targets([str(ROOT / "suites")])
        if args.k in t.name
        for m in MODE_NAMES
        if t.runs_in(Mode(m)) and t.expectation(Mode(m)).kind == "may-fail"
        if args.all or t.expectation(Mode(m)).rate is None
    ]
    print(f"{len(cells)} may-fail cells, {args.examples} examples × {args.seeds} seeds", flush=True)
    for target, mode, expect in cells:
        start, found = time.perf_counter(), 0
        for seed in range(args.seeds):
            report = stress.run(
                [target], modes=(mode,), max_examples=args.examples, seed=seed, jobs=args.jobs
            )
            checks = {
                f.check for f in report.findings_for(target.name, mode) if f.outcome == "fail"
            }
            found += bool(checks & set(expect.checks or checks))
        took = time.perf_counter() - start
        print(
            f"{target.name}[{mode}] {found}/{args.seeds} = {found / args.seeds:.2f}  ({took:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
