"""The ``stress`` command: ``run`` suites, ``fuzz`` one function, ``compare`` with a baseline,
``replay`` a finding, ``merge`` shard reports, re-render a ``report``.

Exit codes: 0 every expectation met, 1 a check failed (or an expected failure was not found),
2 usage or input error, 130 interrupted (a partial report is still written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import StressError
from .options import add_search_options, in_shard
from .replay import explain, replay
from .report.compare import FailOn, compare_reports, merge_reports, parse_fail_on
from .report.markdown import STATUS_LABELS
from .report.model import Finding, Report, Result
from .report.storage import load_report, write_report
from .runner import default_profile, run
from .strategies import from_name, parse
from .targets import Target, make_target, parameters

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stress", description="Property-based numerical stress testing for PyTorch."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_run = sub.add_parser(
        "run", help="run every target found in suites (files, folders or modules)"
    )
    p_run.add_argument(
        "paths", nargs="*", default=["suites"], help="files, folders or modules. Default: suites"
    )
    p_run.add_argument(
        "-k", dest="keyword", default=None, help="only targets whose name contains this text"
    )
    p_run.add_argument(
        "--baseline",
        default=None,
        help="a saved report to compare with: exit 1 only on regressions",
    )
    p_run.add_argument("--fail-on", type=_fail_on, default=FailOn(), help=FAIL_ON_HELP)
    p_fuzz = sub.add_parser("fuzz", help="fuzz one function: stress fuzz module:function")
    p_fuzz.add_argument("function", help="module:function or path/to/file.py:function")
    p_fuzz.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=STRATEGY",
        help='strategy for a parameter, e.g. x=\'embeddings(("B", "D"))\'; others are inferred from their names',
    )
    for p in (p_run, p_fuzz):
        add_search_options(p.add_argument)
        p.add_argument(
            "--report-dir",
            default="reports",
            help="where reports/<run-id>/ is written. Default: %(default)s",
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_cmp = sub.add_parser("compare", help="compare a run with a baseline: exit 1 on regressions")
    p_cmp.add_argument("baseline", help="baseline report.json or its folder")
    p_cmp.add_argument("new", help="new report.json or its folder")
    p_cmp.add_argument("--fail-on", type=_fail_on, default=FailOn(), help=FAIL_ON_HELP)
    p_cmp.add_argument(
        "--markdown", default=None, help="also write the comparison as Markdown to this file"
    )
    p_rep = sub.add_parser("replay", help="re-run one finding from its stored counterexample")
    p_rep.add_argument("report", help="report.json or its folder")
    p_rep.add_argument("finding", help="finding id, number (1-based) or a unique part of its id")
    p_explain = sub.add_parser(
        "explain", help="where a finding's first NaN/Inf or large error appeared, and why"
    )
    p_explain.add_argument("report", help="report.json or its folder")
    p_explain.add_argument(
        "finding", help="finding id, number (1-based) or a unique part of its id"
    )
    p_merge = sub.add_parser("merge", help="merge shard reports into one")
    p_merge.add_argument("reports", nargs="+", help="report.json files or their folders")
    p_merge.add_argument("-o", "--output", required=True, help="folder for the merged report")
    p_view = sub.add_parser("report", help="write report.md and report.html again from report.json")
    p_view.add_argument("report", help="report.json or its folder")
    return parser


FAIL_ON_HELP = "what counts as a regression: new-findings, status, error:<k>x, grad:<k>x. Default: new-findings,status"


def _fail_on(text: str) -> FailOn:
    try:
        return parse_fail_on(text)
    except StressError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _folder(path: str) -> Path:
    p = Path(path)
    return p if p.is_dir() else p.parent


def _compare(
    base_path: str, report: Report, fail_on: FailOn, console: Console, markdown: str | None = None
) -> int:
    comparison = compare_reports(load_report(base_path), report, fail_on)
    for w in comparison.warnings:
        console.print(f"warning: {w}", markup=False)
    table = Table(
        title=f"compare: {len(comparison.regressions)} regression(s), {len(comparison.fixes)} fix(es)"
    )
    for column in ("change", "what", "detail"):
        table.add_column(column, overflow="fold")
    for c in comparison.changes:
        table.add_row(c.kind, c.key, c.detail)
    console.print(table)
    if markdown:
        Path(markdown).write_text(comparison.to_markdown())
    return EXIT_OK if comparison.ok else EXIT_FAILED


def _other_command(args: argparse.Namespace, console: Console) -> int:
    if args.command == "compare":
        return _compare(args.baseline, load_report(args.new), args.fail_on, console, args.markdown)
    if args.command == "replay":
        outcome = replay(args.report, args.finding)
        console.print(str(outcome), markup=False)
        return EXIT_FAILED if outcome.still_fails else EXIT_OK
    if args.command == "explain":
        console.print(explain(load_report(args.report), args.finding), markup=False)
        return EXIT_OK
    if args.command == "merge":
        out = Path(args.output)
        merged = merge_reports([(load_report(p), _folder(p)) for p in args.reports], out)
        write_report(merged, out)
        console.print(f"{merged}\nmerged report: {out / 'report.json'}", markup=False)
        return EXIT_OK if merged.ok else EXIT_FAILED
    report = load_report(args.report)
    write_report(report, _folder(args.report))
    console.print(f"wrote report.md and report.html beside {args.report}", markup=False)
    return EXIT_OK


def _fuzz_target(function: str, args: list[str]) -> Target:
    from .discovery import load_object

    fn = load_object(function)
    if isinstance(fn, Target):
        return fn
    given = {}
    for item in args:
        name, sep, expr = item.partition("=")
        if not sep or not name.strip():
            raise StressError(
                f'--arg {item!r}: expected NAME=STRATEGY, e.g. x=\'logits(("B", "C"))\''
            )
        given[name.strip()] = parse(expr)
    params = parameters(fn)
    if not params and not given:
        raise StressError(
            f"cannot read the parameters of {function!r}; give each one with --arg NAME=STRATEGY"
        )
    for name, p in params.items():
        if (
            name not in given
            and p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ):
            given[name] = from_name(name)
    return make_target(fn, given, name=function)


def _progress(
    console: Console, total: int, enabled: bool
) -> tuple[Progress, Callable[[Result, list[Finding]], None]]:
    progress = Progress(
        TextColumn("[bold]stress[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=True,
    )
    task = progress.add_task("", total=total)

    def advance(result: Result, findings: list[Finding]) -> None:
        progress.update(
            task, advance=1, description=f"{result.target} [{result.mode}] {result.status}"
        )

    return progress, advance


def _summary(report: Report, console: Console) -> None:
    modes = list(dict.fromkeys(r.mode for r in report.results))
    table = Table(title="torch-stress summary", show_lines=False)
    table.add_column("target", overflow="fold")
    for m in modes:
        table.add_column(m, justify="center")
    status = {(r.target, r.mode): r.status for r in report.results}
    for t in dict.fromkeys(r.target for r in report.results):
        table.add_row(t, *(STATUS_LABELS.get(status.get((t, m), ""), "") for m in modes))
    console.print(table)
    for f in report.unexpected:
        console.print(str(f), markup=False, highlight=False)
        console.print()
    for r in report.results:
        if r.status == "xpassed":
            console.print(f"{r.target} [{r.mode}]: {r.reason}", markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    err = Console(stderr=True)
    try:
        if args.command not in ("run", "fuzz"):
            return _other_command(args, console)
        if args.command == "run":
            from .discovery import collect_targets

            targets = collect_targets(args.paths)
            if args.keyword:
                targets = [t for t in targets if args.keyword in t.name]
            targets = [t for t in targets if in_shard(t.name, args.shard)]
            if not targets:
                err.print(
                    f"stress run: no targets found in {' '.join(args.paths)}"
                    + (f" matching -k {args.keyword!r}" if args.keyword else "")
                )
                return EXIT_USAGE
        else:
            targets = [_fuzz_target(args.function, args.arg)]
        progress, advance = _progress(
            err, len(targets) * len(args.modes), not args.no_progress and err.is_terminal
        )
        with progress:
            report = run(
                targets,
                modes=args.modes,
                device=args.device,
                profile=args.profile or default_profile(),
                max_examples=args.max_examples,
                seed=args.seed,
                report_dir=args.report_dir,
                on_result=advance,
            )
    except KeyboardInterrupt:
        err.print(f"interrupted: the partial report is in {args.report_dir}/")
        return EXIT_INTERRUPTED
    except StressError as e:
        err.print(f"stress {args.command}: {e}", markup=False, highlight=False)
        return EXIT_USAGE
    _summary(report, console)
    path = report.settings.get("report_path")
    console.print(f"{report}\nreport: {path}", markup=False)
    if getattr(args, "baseline", None):
        try:
            return _compare(args.baseline, report, args.fail_on, console)
        except StressError as e:
            err.print(f"stress run: {e}", markup=False, highlight=False)
            return EXIT_USAGE
    return EXIT_OK if report.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
