"""The run engine: worker processes, deadlines, crashes, interrupts, journals, memory, Dask."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import stress
from stress import Status, st
from stress.integrations.cli import main
from stress.report.storage import Journal, load_report

FP32 = ("fp32",)


def bounded(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x).mean()


def hangs_on_big_batches(x: torch.Tensor) -> torch.Tensor:
    if x.shape[0] > 1:  # reached within a few examples, whatever Hypothesis draws first
        time.sleep(3600)  # the target hangs (a stuck kernel, a deadlock)
    return x.sum()


def hangs(x: torch.Tensor) -> torch.Tensor:
    time.sleep(3600)
    return x.sum()


def segfaults(x: torch.Tensor) -> torch.Tensor:
    os.kill(os.getpid(), signal.SIGSEGV)  # a custom C++/CUDA op gone wrong
    return x.sum()


def killed(x: torch.Tensor) -> torch.Tensor:
    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's out-of-memory killer does
    return x.sum()


def test_a_hang_becomes_a_timeout_naming_the_example_and_the_run_goes_on(tmp_path: Path) -> None:
    targets = [
        stress.target(hangs_on_big_batches, x=st.tensors(("B",))),
        stress.target(bounded, x=st.tensors(("B",), min_value=-1, max_value=1)),
    ]
    start = time.perf_counter()
    report = stress.run(
        targets,
        modes=FP32,
        profile="ci",
        max_examples=20,
        deadline=2.0,
        jobs=2,
        report_dir=tmp_path,
    )
    assert time.perf_counter() - start < 60
    hung, fine = report.results
    assert hung.status == Status.TIMEOUT and not report.ok
    assert "deadline of 2 s" in (hung.reason or "") and "x=tensors(B=" in (hung.reason or "")
    # where it hung: the user's line, and the call it was inside
    assert re.search(r"it was at test_engine.py:\d+ in hangs_on_big_batches", hung.reason or "")
    assert fine.status == Status.PASSED
    saved = json.loads(next(tmp_path.iterdir()).joinpath("report.json").read_text())
    assert [r["status"] for r in saved["results"]] == ["timeout", "passed"]


def test_where_a_hung_worker_was_is_read_from_its_stack() -> None:
    from stress.engine.workers import _stuck_at

    torch_dir = os.path.dirname(torch.__file__)
    stress_dir = os.path.dirname(stress.__file__)
    dump = (
        "Current thread 0x00007f (most recent call first):\n"
        f'  File "{torch_dir}/nn/modules/conv.py", line 549 in _conv_forward\n'
        '  File "/home/me/project/losses.py", line 7 in my_loss\n'
        f'  File "{stress_dir}/engine/evaluation.py", line 300 in _call\n'
    )
    assert (
        _stuck_at(dump) == "; it was at losses.py:7 in my_loss, inside conv.py:549 in _conv_forward"
    )
    # no line of the user's: the innermost line of a library that is not Python's own
    import threading as py_threading

    stdlib_file = py_threading.__file__
    only_libraries = (
        f'  File "{stdlib_file}", line 331 in wait\n'
        f'  File "{torch_dir}/serialization.py", line 12 in save\n'
    )
    assert (
        _stuck_at(only_libraries)
        == "; it was at serialization.py:12 in save, inside threading.py:331 in wait"
    )
    # a folder that only starts like a library's is the user's
    sibling = f'  File "{stress_dir}_suites/mine.py", line 3 in f\n'
    assert _stuck_at(sibling) == "; it was at mine.py:3 in f"
    assert _stuck_at("") == ""


class _FinalizerOfAnotherProcess:
    """Garbage whose finalizer waits on a thread only its own process has (a Dask client's)."""

    def __init__(self) -> None:
        self.pid, self.cycle = os.getpid(), self

    def __del__(self) -> None:
        if os.getpid() != self.pid:
            threading.Event().wait()  # a forked child: the thread to wait on was not copied


def collects_garbage(x: torch.Tensor) -> torch.Tensor:
    gc.collect()
    return x.sum()


def test_a_worker_never_runs_the_finalizers_of_its_parents_garbage() -> None:
    gc.disable()  # so the garbage is still there when the worker is forked
    try:
        _FinalizerOfAnotherProcess()
        report = stress.run(
            [stress.target(collects_garbage, x=st.tensors(("B",)))],
            modes=FP32,
            profile="ci",
            max_examples=5,
            deadline=5.0,
            jobs=1,
        )
    finally:
        gc.enable()
        gc.collect()
    assert report.results[0].status == Status.PASSED, report.results[0].reason


@pytest.mark.parametrize(
    ("fn", "needle"), [(segfaults, "SIGSEGV"), (killed, "out-of-memory killer")]
)
def test_a_dead_worker_becomes_a_crash_with_its_signal(fn: Any, needle: str) -> None:
    targets = [
        stress.target(fn, x=st.tensors((2,))),
        stress.target(bounded, x=st.tensors((2,), min_value=-1, max_value=1)),
    ]
    report = stress.run(targets, modes=FP32, profile="ci", max_examples=5, jobs=2)
    crashed, fine = report.results
    assert (
        crashed.status == Status.CRASH
        and needle in (crashed.reason or "")
        and "example 1" in (crashed.reason or "")
    )
    assert fine.status == Status.PASSED and not report.ok


def _pid_writer(path: Path) -> Any:
    def fn(x: torch.Tensor) -> torch.Tensor:
        path.write_text(str(os.getpid()))
        return torch.tanh(x).mean()

    fn.__name__ = f"writes_pid_{path.stem}"
    return fn


def test_one_worker_runs_job_after_job_and_is_replaced_when_it_dies(tmp_path: Path) -> None:
    pids = [tmp_path / f"{i}.pid" for i in range(4)]
    tensors = st.tensors((2,), min_value=-1, max_value=1)
    targets = [stress.target(_pid_writer(p), x=tensors) for p in pids[:2]]
    targets += [stress.target(segfaults, x=tensors)]
    targets += [stress.target(_pid_writer(p), x=tensors) for p in pids[2:]]
    report = stress.run(targets, modes=FP32, profile="ci", max_examples=3, jobs=1)
    assert [r.status for r in report.results] == [Status.PASSED] * 2 + [Status.CRASH] + [
        Status.PASSED
    ] * 2
    first, second, third, fourth = (int(p.read_text()) for p in pids)
    assert first == second != os.getpid()  # one worker ran both jobs
    assert third == fourth != first  # the crash took that worker; a new one took over


def test_a_deadline_can_be_set_per_target() -> None:
    slow = stress.target(hangs_on_big_batches, x=st.tensors(("B",)), deadline=1.0)
    report = stress.run([slow], modes=FP32, profile="ci", max_examples=20, jobs=1)
    assert report.results[0].status == Status.TIMEOUT and "deadline of 1 s" in str(
        report.results[0].reason
    )


def test_ctrl_c_stops_the_workers_and_leaves_a_partial_report_naming_what_ran(
    tmp_path: Path,
) -> None:
    targets = [stress.target(hangs, x=st.tensors(("B",)))]  # hangs on its first example
    # a process started in the background (`cmd &`, as CI runners may) inherits SIGINT ignored:
    # Ctrl-C is what this test is about, so it gets Python's own handler back
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    outcome: Any = None
    try:
        outcome = stress.run(
            targets,
            modes=FP32,
            profile="ci",
            max_examples=20,
            deadline=600,
            jobs=2,
            report_dir=tmp_path,
        )
    except KeyboardInterrupt:
        outcome = "interrupted"
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert outcome == "interrupted", [(r.status, r.reason) for r in outcome.results]
    run_dir = next(tmp_path.iterdir())
    report = load_report(run_dir)
    assert not report.complete and report.results == []
    assert report.running and report.running[0].startswith("hangs[fp32]: example")
    assert "Still running when the run stopped" in (run_dir / "report.md").read_text()


def test_a_killed_run_leaves_a_journal_that_reads_as_a_partial_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = stress.run(
        [stress.target(bounded, x=st.tensors((2,), min_value=-1, max_value=1))],
        modes=("fp32", "bf16"),
        profile="ci",
        max_examples=5,
    )
    journal = Journal(tmp_path, report)
    journal.append(report.results[0], [])  # the run was killed after its first result
    journal.close()
    partial = load_report(tmp_path)
    assert not partial.complete and [r.mode for r in partial.results] == ["fp32"]
    assert main(["report", str(tmp_path)]) == 0  # renders report.json, md and html from it
    assert load_report(tmp_path / "report.json").results[0].status == Status.PASSED


def test_results_do_not_depend_on_the_number_of_workers() -> None:
    def naive_lse(x: torch.Tensor) -> torch.Tensor:
        return x.exp().sum().log()

    targets = [
        stress.target(naive_lse, x=st.tensors((3,), min_value=-100, max_value=100)),
        stress.target(bounded, x=st.tensors((3,))),
    ]
    one = stress.run(targets, modes=("fp32", "fp16"), profile="ci", jobs=0)
    two = stress.run(targets, modes=("fp32", "fp16"), profile="ci", jobs=2)
    assert [(r.target, r.mode, r.status, r.examples) for r in one.results] == [
        (r.target, r.mode, r.status, r.examples) for r in two.results
    ]
    assert [(f.id, f.counterexample) for f in one.findings] == [
        (f.id, f.counterexample) for f in two.findings
    ]


def test_examples_over_the_memory_budget_are_not_materialized() -> None:
    seen: list[int] = []

    def records(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.numel())
        return x.sum()

    target = stress.target(records, x=st.tensors(("B", "D")), dims={"B": (1, 100000), "D": (1, 64)})
    report = stress.run(
        [target], modes=FP32, profile="ci", max_examples=30, jobs=0, memory_budget=1e-3
    )  # 1 MiB
    assert report.results[0].over_budget > 0
    assert seen and max(seen) * 48 <= 2**20  # every example that ran fits the budget


def test_a_target_whose_smallest_example_cannot_fit_is_refused_up_front() -> None:
    target = stress.target(
        bounded, x=st.tensors(("B", "D")), dims={"B": (100000, 200000), "D": (512, 512)}
    )
    with pytest.raises(
        stress.InvalidArgument, match=r"smallest example needs .* GiB, over the memory budget"
    ):
        stress.run([target], modes=FP32, memory_budget=1.0)


SUITE = """
import torch
import stress
from stress import st

@stress.target(x=st.tensors(("B",), min_value=-100, max_value=100), expect={"fp16": "finite_forward"}, reason="exp overflows float16")
def naive_lse(x):
    return x.exp().sum().log()

@stress.target(x=st.tensors(("B",), min_value=-1, max_value=1))
def bounded(x):
    return torch.tanh(x).mean()
"""


def test_a_dask_cluster_runs_the_jobs_and_gives_the_same_report(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    path = tmp_path / "dask_suite.py"
    path.write_text(textwrap.dedent(SUITE))
    from stress.engine.discovery import collect_targets

    targets = collect_targets([str(path)])
    local = stress.run(targets, modes=("fp32", "fp16"), profile="ci", jobs=2)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None
    ) as cluster:
        remote = stress.run(
            targets, modes=("fp32", "fp16"), profile="ci", scheduler=cluster.scheduler_address
        )
    assert [(r.target, r.mode, r.status, r.examples) for r in remote.results] == [
        (r.target, r.mode, r.status, r.examples) for r in local.results
    ]
    assert [f.id for f in remote.findings] == [f.id for f in local.findings]
    assert remote.settings["scheduler"] == cluster.scheduler_address
