"""The ``stress`` command: ``run`` suites, ``fuzz`` one function, ``compare`` with a baseline,
``replay`` a finding, ``explain`` it, ``merge`` shard reports, re-render a ``report``.

Exit codes: 0 every expectation met, 1 a check failed (or an expected failure was not found, or
a job timed out or crashed), 2 usage or input error, 130 interrupted (a partial report is
still written).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import InvalidArgument, StressError
from .flags import add_run_flags, add_target_flags, in_shard, target_options

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

FAIL_ON_HELP = (
    "what else counts as a regression, added to the defaults (new-findings, status): "
    "error:<k>x, grad:<k>x; -new-findings or -status drops a default"
)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line: the usage block is one ``--help`` away."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    p_run.add_argument("--fail-on", type=_fail_on, default=None, help=FAIL_ON_HELP)
    p_fuzz = sub.add_parser("fuzz", help="fuzz one function: stress fuzz module:function")
    p_fuzz.add_argument("function", help="module:function or path/to/file.py:function")
    p_fuzz.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=STRATEGY",
        help='strategy for a parameter, e.g. x=\'embeddings(("B", "D"))\'; others are inferred from their names',
    )
    add_target_flags(p_fuzz.add_argument)
    for p in (p_run, p_fuzz):
        add_run_flags(p.add_argument)
        p.add_argument(
            "--report-dir",
            default="reports",
            help="where reports/<run-id>/ is written. Default: %(default)s",
        )
        p.add_argument(
            "--no-progress", action="store_true", help="no progress bar and no progress lines"
        )
    p_cmp = sub.add_parser("compare", help="compare a run with a baseline: exit 1 on regressions")
    p_cmp.add_argument("baseline", help="baseline report.json or its folder")
    p_cmp.add_argument("new", help="new report.json or its folder")
    p_cmp.add_argument("--fail-on", type=_fail_on, default=None, help=FAIL_ON_HELP)
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
    p_view = sub.add_parser(
        "report",
        help="write report.json, report.md and report.html again (from the journal of a killed run too)",
    )
    p_view.add_argument("report", help="report.json or its folder")
    return parser


def _fail_on(text: str) -> Any:
    from ..report.compare import parse_fail_on

    try:
        return parse_fail_on(text)
    except StressError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _folder(path: str) -> Path:
    p = Path(path)
    return p if p.is_dir() else p.parent


def _compare(
    baseline: Any, report: Any, fail_on: Any, console: Console, markdown: str | None = None
) -> int:
    from ..report.compare import compare_reports
    from ..report.storage import atomic_write

    comparison = compare_reports(baseline, report, fail_on)
    for w in comparison.warnings:
        console.print(f"warning: {w}", markup=False)
    if comparison.changes:
        table = Table(
            title=f"compare: {len(comparison.regressions)} regression(s), "
            f"{len(comparison.fixes)} fix(es)"
        )
        for column in ("change", "what", "detail"):
            table.add_column(column, overflow="fold")
        for c in comparison.changes:
            table.add_row(escape(c.kind), escape(c.key), escape(c.detail))
        console.print(table)
    else:
        console.print("compare: no changes — every result and finding is as in the baseline")
    if markdown:
        try:
            text = comparison.to_markdown().encode()
            atomic_write(Path(markdown), lambda fh: fh.write(text))
        except OSError as e:
            raise InvalidArgument(
                f"--markdown {markdown}: cannot write {e.filename or markdown} ({e.strerror})"
            ) from None
    return EXIT_OK if comparison.ok else EXIT_FAILED


def _other_command(args: argparse.Namespace, console: Console) -> int:
    from ..report.storage import load_report, publish_report, write_report

    if args.command == "compare":
        return _compare(
            load_report(args.baseline), load_report(args.new), args.fail_on, console, args.markdown
        )
    if args.command == "replay":
        from .replay import replay

        outcome = replay(args.report, args.finding)
        console.print(str(outcome), markup=False)
        return EXIT_FAILED if outcome.still_fails else EXIT_OK
    if args.command == "explain":
        from .replay import explain

        console.print(explain(load_report(args.report), args.finding), markup=False)
        return EXIT_OK
    if args.command == "merge":
        from ..report.compare import merge_reports

        merged = merge_reports([(load_report(p), _folder(p)) for p in args.reports])
        path = publish_report(merged, args.output)
        console.print(f"{merged}\nmerged report: {path}", markup=False)
        return EXIT_OK if merged.ok else EXIT_FAILED
    report = load_report(args.report)
    write_report(report, _folder(args.report))
    console.print(
        f"wrote report.json, report.md and report.html in {_folder(args.report)}", markup=False
    )
    return EXIT_OK


def _fuzz_target(args: argparse.Namespace) -> Any:
    from ..core.options import FunctionOptions
    from ..core.strategies import from_name, parse
    from ..engine.discovery import load_object
    from ..engine.targets import Target, make_target, parameters

    fn = load_object(args.function)
    if isinstance(fn, Target):
        return fn
    given: dict[str, Any] = {}
    for item in args.arg:
        name, sep, expr = item.partition("=")
        if not sep or not name.strip():
            raise StressError(
                f'--arg {item!r}: expected NAME=STRATEGY, e.g. x=\'logits(("B", "C"))\''
            )
        given[name.strip()] = parse(expr)
    params = parameters(fn)
    if not params and not given:
        raise StressError(
            f"cannot read the parameters of {args.function!r}; give each one with --arg NAME=STRATEGY"
        )
    inferred = []
    for name, p in params.items():
        if (
            name not in given
            and p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ):
            given[name] = from_name(name)
            inferred.append(name)
    target = make_target(fn, given, FunctionOptions(name=args.function, **target_options(args)))
    target.inferred = tuple(inferred)
    return target


class _Progress:
    """A progress bar on a terminal; elsewhere (CI logs) one line per finished target × mode."""

    def __init__(self, console: Console, total: int, enabled: bool) -> None:
        self.console, self.total, self.done = console, total, 0
        self.start = time.perf_counter()
        self.bar = Progress(
            TextColumn("[bold]stress[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=not (enabled and console.is_terminal),
            transient=True,
        )
        self.lines = enabled and not console.is_terminal
        self.task = self.bar.add_task("", total=total)

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, result: Any, findings: list[Any]) -> None:
        self.done += 1
        line = f"{result.target} [{result.mode}] {result.status}"
        self.bar.update(self.task, advance=1, description=escape(line))
        if self.lines:
            elapsed = time.perf_counter() - self.start
            self.console.print(
                f"[{self.done}/{self.total}] {line} ({result.seconds:.1f} s; {elapsed:.0f} s elapsed)",
                markup=False,
                highlight=False,
            )


def _summary(report: Any, console: Console) -> None:
    from ..report.render import STATUS_LABELS

    modes = list(dict.fromkeys(r.mode for r in report.results))
    targets = list(dict.fromkeys(r.target for r in report.results))
    table = Table(title="torch-stress summary", show_lines=False)
    table.add_column("target", no_wrap=True)
    for m in modes:
        table.add_column(escape(m), justify="center", no_wrap=True)
    status = {(r.target, r.mode): r.status for r in report.results}
    for t in targets:
        table.add_row(
            escape(t), *(STATUS_LABELS[status[(t, m)]] if (t, m) in status else "" for m in modes)
        )
    width = max((len(t) for t in targets), default=10) + 16 * len(modes) + 8
    Console(file=console.file, width=max(width, 80), highlight=False).print(table)
    for f in report.unexpected:
        console.print(str(f), markup=False, highlight=False)
        console.print()
    for r in report.results:
        if r.status.fails_run and r.reason:
            console.print(
                f"{r.target} [{r.mode}] {r.status}: {r.reason}", markup=False, highlight=False
            )


def _collect(args: argparse.Namespace) -> list[Any]:
    if args.command == "fuzz":
        return [_fuzz_target(args)]
    from ..engine.discovery import collect_targets

    targets = collect_targets(args.paths)
    if args.keyword:
        targets = [t for t in targets if args.keyword in t.name]
    return [t for t in targets if in_shard(t.name, args.shard)]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        if args.command not in ("run", "fuzz"):
            return _other_command(args, console)
        from ..core.options import RunOptions
        from ..engine.runner import run
        from ..report.storage import load_report

        # a baseline that cannot be read fails now, not after the whole run
        baseline = load_report(args.baseline) if getattr(args, "baseline", None) else None
        targets = _collect(args)
        if not targets:
            where = " ".join(args.paths) + (
                f" matching -k {args.keyword!r}" if args.keyword else ""
            )
            err.print(f"stress run: no targets found in {where}", markup=False)
            return EXIT_USAGE
        options = {name: getattr(args, name) for name in RunOptions.names()}
        with _Progress(err, len(targets) * len(args.modes), not args.no_progress) as progress:
            report = run(targets, report_dir=args.report_dir, on_result=progress, **options)
    except KeyboardInterrupt:
        err.print(f"interrupted: the partial report is in {args.report_dir}/", markup=False)
        return EXIT_INTERRUPTED
    except StressError as e:
        err.print(f"stress {args.command}: {e}", markup=False, highlight=False)
        return EXIT_USAGE
    _summary(report, console)
    console.print(
        f"{report.run_id}: {'OK' if report.ok else 'FAILED'}"
        + (
            " (against a baseline only regressions fail the run)"
            if baseline and not report.ok
            else ""
        )
        + f"\nreport: {report.settings.get('report_path')}",
        markup=False,
    )
    if baseline is not None:
        try:
            return _compare(baseline, report, args.fail_on, console)
        except StressError as e:
            err.print(f"stress run: {e}", markup=False, highlight=False)
            return EXIT_USAGE
    return EXIT_OK if report.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
