"""Running targets × modes: jobs on workers, results journaled, the report rendered once.

``run`` turns targets and modes into jobs and hands them to workers (:mod:`.workers`): forked
processes on this machine, one per core by default, or the workers of a Dask cluster. Each
finished job is journaled; the report (``report.json``, ``report.md``, ``report.html``) is
written once at the end — or, on Ctrl-C, from what finished, naming what was still running.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path
from typing import Any

# ask NVML whether a GPU is there: a CUDA context made in this process would not survive fork()
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

from ..core.modes import Mode, resolve_modes
from ..core.options import MODE_NAMES, FunctionOptions, RunOptions, options_doc
from ..core.strategies import TensorStrategy, as_argument_strategy, resolve_dims
from ..errors import InvalidArgument
from ..report.environment import environment
from ..report.model import Finding, Report, Result
from ..report.storage import Journal, write_report
from .evaluation import BYTES_PER_ELEMENT
from .events import LISTENERS
from .jobs import Job, JobSettings, execute
from .targets import BaseTarget, make_target
from .workers import (
    Running,
    WorkerPool,
    dask_executor,
    hold_forks,
    machine_memory,
    run_supervised,
    warm_up,
)

__all__ = ["fuzz", "run"]

GiB = 2**30

OnResult = Callable[[Result, list[Finding]], None]


def _make_report_dir(folder: Path) -> None:
    """Fail before any job runs when the reports cannot be written where asked."""
    if folder.exists() and not folder.is_dir():
        raise InvalidArgument(f"report_dir={str(folder)!r} is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidArgument(
            f"report_dir={str(folder)!r}: cannot create it ({e.strerror})"
        ) from None


def run(
    targets: Iterable[BaseTarget],
    *,
    report_dir: str | os.PathLike[str] | None = None,
    on_result: OnResult | None = None,
    **options: Any,
) -> Report:
    """Run every target in every mode and return the report.

    ``options`` are those of :class:`~stress.core.options.RunOptions` (``modes``, ``device``,
    ``profile``, ``max_examples``, ``seed``, ``jobs``, ``scheduler``, ``strict``, ``deadline``,
    ``memory_budget``, ``shrink``). With ``report_dir`` each result is journaled as it finishes and the
    report is written into ``report_dir/<run-id>/`` at the end, also when interrupted.
    """
    opts = RunOptions(**options)
    if report_dir is not None:
        _make_report_dir(Path(report_dir))
    targets = list(targets)
    modes = resolve_modes(opts.modes, opts.device)
    workers = opts.workers
    scheduler = opts.scheduler or os.environ.get("STRESS_SCHEDULER")
    budget = (
        opts.memory_budget * GiB if opts.memory_budget else machine_memory() // 4 // max(workers, 1)
    )
    settings = JobSettings(
        profile=opts.resolved_profile,
        max_examples=opts.max_examples,
        seed=opts.seed,
        deadline=opts.deadline or JobSettings.deadline,
        strict=opts.strict,
        memory_budget=int(budget),
        shrink_expected=opts.shrink_expected,
    )
    for t in targets:
        _check_memory(t, settings.memory_budget)
    jobs = [
        Job(i, t, m, settings)
        for i, (t, m) in enumerate((t, m) for t in targets for m in modes if t.runs_in(m))
    ]
    report = Report(
        settings={
            "profile": settings.profile,
            "max_examples": opts.max_examples or _profile_examples(settings.profile),
            "seed": opts.seed,
            "modes": [m.label for m in modes],
            "device": opts.device,
            "jobs": 0 if scheduler is None and workers == 0 else workers,
            "scheduler": scheduler,
            "strict": opts.strict,
            "shrink": "all" if opts.shrink_expected else "unexpected",
            "targets": [t.name for t in targets],
        }
    )
    out = Path(report_dir, report.run_id) if report_dir is not None else None
    journal = Journal(out, report) if out is not None else None
    running = Running()
    done: dict[int, tuple[Result, list[Finding]]] = {}

    def finish(job: Job, output: tuple[Result, list[Finding]]) -> None:
        done[job.index] = output
        if journal is not None:
            with hold_forks():  # its files and torch.save hold locks a fork would copy
                journal.append(*output)
        for listener in ([on_result] if on_result else []) + LISTENERS:
            listener(*output)

    try:
        if scheduler is None and workers == 0:
            for job in jobs:
                running.note(job.key, "running in this process")
                finish(job, execute(job, heartbeat=functools.partial(running.note, job.key)))
                running.done(job.key)
        else:
            _run_pool(jobs, workers, scheduler, running, _address_space(workers, modes), finish)
        report.complete = True
    finally:
        report.results = [done[i][0] for i in sorted(done)]
        report.findings = [f for i in sorted(done) for f in done[i][1]]
        report.running = running.describe()
        report.environment = environment()  # after the workers: a CUDA context may be made here
        if journal is not None:
            journal.close()
        if out is not None:
            write_report(report, out)
            report.settings["report_path"] = str(out / "report.json")
    return report


def _run_pool(
    jobs: Sequence[Job],
    workers: int,
    scheduler: str | None,
    running: Running,
    address_space: int | None,
    finish: Callable[[Job, tuple[Result, list[Finding]]], None],
) -> None:
    with ExitStack() as stack:
        if scheduler is not None:
            executor: Any = stack.enter_context(dask_executor(scheduler))
            pending = {
                executor.submit(run_supervised, job, None, address_space): job for job in jobs
            }
        else:
            warm_up()
            pool = WorkerPool(jobs, address_space)
            stack.callback(pool.close)
            executor = stack.enter_context(ThreadPoolExecutor(max(workers, 1), "stress-worker"))
            pending = {executor.submit(pool.run, job, running): job for job in jobs}
        try:
            while pending:
                finished, _ = wait(pending, return_when="FIRST_COMPLETED")
                for future in finished:
                    finish(pending.pop(future), future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            running.stop()
            raise


def _check_memory(target: BaseTarget, budget: int | None) -> None:
    """Refuse, up front, a target whose smallest example would not fit the memory budget (larger
    examples are skipped one by one during the search)."""
    arguments = getattr(target, "arguments", None) or {
        k: as_argument_strategy(k, v) for k, v in getattr(target, "batch", {}).items()
    }
    if budget is None or not arguments:
        return
    ranges = resolve_dims(arguments, target.options.dims)
    smallest = (
        sum(
            math.prod(ranges[d][0] if isinstance(d, str) else d for d in a.shape)
            for a in arguments.values()
            if isinstance(a, TensorStrategy)
        )
        * BYTES_PER_ELEMENT
    )
    if smallest > budget:
        raise InvalidArgument(
            f"{target.name}: its smallest example needs {smallest / GiB:.3g} GiB, over the memory budget of "
            f"{budget / GiB:.3g} GiB per example (dims={dict(ranges)!r}); lower the dims ranges or raise "
            "memory_budget= / --memory-budget"
        )


def _address_space(workers: int, modes: list[Mode]) -> int | None:
    """The cap on each worker's address space: its share of the memory, at least 4 GiB.
    None on CUDA, whose driver reserves far more address space than memory."""
    if any(m.device == "cuda" for m in modes):
        return None
    return max(4 * GiB, int(0.8 * machine_memory() / max(workers, 1)))


def _profile_examples(profile: str) -> int:
    from .profiles import PROFILES

    return int(PROFILES[profile]["max_examples"])


def fuzz(
    fn: Callable[..., Any],
    /,
    *,
    modes: Sequence[str | Mode] | str = MODE_NAMES,
    device: str = "cpu",
    profile: str | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    jobs: int | None = None,
    strict: bool = False,
    deadline: float | None = None,
    shrink: str | None = None,
    scheduler: str | None = None,
    memory_budget: float | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    expect: Any = None,
    reason: str | None = None,
    dims: dict[str, tuple[int, int]] | None = None,
    wrt: Sequence[str] | str | None = None,
    tolerances: dict[str, float] | None = None,
    gradient_tolerances: dict[str, float] | None = None,
    error_floor: float = 1.0,
    max_output: float | None = None,
    max_grad_norm: float | None = None,
    gradient_error: bool = True,
    backward_error: bool = False,
    reference: Callable[..., Any] | str | None = None,
    reference_dtype: Any = None,
    name: str | None = None,
    **strategies: Any,
) -> Report:
    """Fuzz one function or ``nn.Module`` in every precision mode and return the :class:`Report`.

    Every keyword that is not an option below is the strategy — or a constant, or a plain
    Hypothesis strategy — of the function's parameter of that name::

        import stress
        from stress import st

        report = stress.fuzz(
            info_nce,
            x=st.embeddings(("B", "D")), y=st.embeddings(("B", "D")),
            temp=st.temperatures(0.01, 1.0),
            modes=("fp32", "bf16", "fp16"), max_examples=200, seed=0,
        )
        assert report.ok, report

    ``report.ok`` is False when a check failed unexpectedly, an expected failure was not found,
    or an example timed out or crashed its worker; ``str(report)`` lists why. Each mode's search
    runs in a worker process (``jobs``, one per core by default; ``jobs=0`` runs in this process).

    Options of the run:

    {run_options}

    Options of the target:

    {target_options}
    """
    given = dict(
        expect=expect,
        reason=reason,
        dims=dims or {},
        wrt=wrt,
        tolerances=tolerances or {},
        gradient_tolerances=gradient_tolerances or {},
        error_floor=error_floor,
        max_output=max_output,
        max_grad_norm=max_grad_norm,
        gradient_error=gradient_error,
        backward_error=backward_error,
        reference=reference,
        reference_dtype=reference_dtype,
        name=name,
    )
    target_options, strategies = FunctionOptions.split({**strategies, **given})
    target = make_target(fn, strategies, FunctionOptions(**target_options))
    return run(
        [target],
        modes=modes,
        device=device,
        profile=profile,
        max_examples=max_examples,
        seed=seed,
        jobs=jobs,
        strict=strict,
        deadline=deadline,
        shrink=shrink,
        scheduler=scheduler,
        memory_budget=memory_budget,
        report_dir=report_dir,
    )


fuzz.__doc__ = (
    (fuzz.__doc__ or "")
    .replace("{run_options}", options_doc(RunOptions).strip())
    .replace("{target_options}", options_doc(FunctionOptions).strip())
)
