"""The README's atlas: every suite target × mode and what it is expected to do, rendered from the
suites' own ``expect=`` declarations so the README cannot drift from them.

    python suites/_atlas.py          # rewrite the matrix between the markers in README.md
    python suites/_atlas.py --check  # exit 1 when README.md is out of date (tests/test_readme.py)

The expectations themselves are proved: ``stress run suites/`` meets every one of them
(tests/test_atlas.py), and each failing cell has a plain-torch proof (tests/test_atlas_proofs.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- atlas:begin -->", "<!-- atlas:end -->"


def _cell(expectation: object) -> str:
    from stress import Expect

    assert isinstance(expectation, Expect)
    if expectation.kind == "pass":
        return "✅ pass"
    checks = ", ".join(sorted(expectation.checks)) if expectation.checks else "any check"
    if expectation.kind == "limit":
        return f"⚠️ limit: {checks}"
    if expectation.kind == "may-fail":
        rate = f" ({expectation.rate:.0%} of seeds)" if expectation.rate is not None else ""
        return f"〰️ may fail: {checks}{rate}"
    return f"❌ {checks}"


def render() -> str:
    """The matrix as a Markdown table: one row per target, one column per mode."""
    from stress import Mode
    from stress.core.options import MODE_NAMES
    from stress.engine.discovery import collect_targets

    targets = collect_targets([str(ROOT / "suites")])
    lines = ["| target | " + " | ".join(MODE_NAMES) + " |", "|---|" + "---|" * len(MODE_NAMES)]
    for t in targets:
        cells = [_cell(t.expectation(Mode(m))) if t.runs_in(Mode(m)) else "–" for m in MODE_NAMES]
        lines.append(f"| `{t.name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def updated(readme: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{render()}\n{END}{tail}"


def main() -> int:
    path = ROOT / "README.md"
    text = path.read_text()
    new = updated(text)
    if "--check" in sys.argv:
        return 0 if new == text else 1
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
