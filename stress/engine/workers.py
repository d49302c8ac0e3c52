"""Where jobs run: this process, long-lived forked workers, or a Dask cluster.

A forked worker (``os.fork``, so any target runs, lambdas included, with no import) tells its
supervisor which example it is on before running it. When one example runs past its deadline,
the supervisor asks the worker for its stack (``faulthandler`` on SIGUSR1, into a file with no
name), kills it, and the job becomes a ``timeout`` naming that example and the line it hung at;
the worker freezes what it inherits (``gc.freeze``), so no finalizer of the parent's garbage
runs in it. A worker that dies (a segfault in a custom op, the kernel's OOM killer) becomes a
``crash`` with its signal. The worker's address space is capped, so a runaway allocation fails
in the worker instead of swapping the machine. Either way the run goes on, on a new worker.

Locally, :class:`WorkerPool` gives each supervising thread of a thread pool one worker that runs
job after job (forking a process that holds torch, per job, cost a tenth of a run). With a
scheduler address, the runner submits :func:`run_supervised` to the executor of an existing
Dask ``distributed`` cluster (``pip install torch-stress[distributed]``), whose workers fork a
supervised process per job.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import os
import pickle
import re
import select
import signal
import site
import struct
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from ..core.outcomes import Status
from ..errors import InvalidArgument
from ..report.model import Finding, Result
from .jobs import Job, execute

__all__ = [
    "Running",
    "WorkerPool",
    "dask_executor",
    "hold_forks",
    "machine_memory",
    "run_supervised",
]

JobOutput = tuple[Result, list[Finding]]
# Python 3.12+ warns on fork() from a process with threads (the supervising threads here); the
# child runs only torch-stress's own code and exits with os._exit
warnings.filterwarnings("ignore", message=r".*multi-threaded.*fork", category=DeprecationWarning)
_HEADER = struct.Struct("!Q")
# one fork at a time, with every supervisor's pipe ends known; also held by the thread that
# records results (hold_forks), so no worker is forked while it holds a lock of its own
_FORK_LOCK = threading.Lock()
_SUPERVISOR_FDS: set[int] = set()  # the pipe ends this process holds to its workers
_THREAD = threading.local()
_POLL = 1.0  # seconds between checks that a silent worker is still alive
_DUMP_LINE = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')  # faulthandler's frames
_STRESS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _anonymous_file() -> int:
    """A file descriptor to a file with no name, for a worker's stack (nothing left behind)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("torch-stress-stack")
    with tempfile.TemporaryFile() as fh:
        return os.dup(fh.fileno())


def hold_forks() -> contextlib.AbstractContextManager[Any]:
    """No worker is forked while the caller's block runs. A fork copies every lock held at that
    instant by another thread — a module being imported, a file being written, torch's
    serializer — and a child that needs one of them waits forever (a false timeout)."""
    return _FORK_LOCK


def machine_memory() -> int:
    """Bytes of physical memory, or 8 GiB when the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


@dataclass
class Running:
    """The jobs in flight: what each is doing and which worker runs it, so an interrupted run
    can stop the workers and say what was running."""

    doing: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)  # what was running when stop() was called
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, key: str, what: str, pid: int | None = None) -> None:
        with self.lock:
            self.doing[key] = what
            if pid is not None:
                self.pids[key] = pid

    def done(self, key: str) -> None:
        with self.lock:
            self.doing.pop(key, None)
            self.pids.pop(key, None)

    def describe(self) -> list[str]:
        with self.lock:
            return self.stopped or [f"{k}: {what}" for k, what in self.doing.items()]

    def stop(self) -> None:
        """Kill every worker (Ctrl-C): their jobs end, what they were doing is kept."""
        with self.lock:
            self.stopped = [f"{k}: {what}" for k, what in self.doing.items()]
            for pid in self.pids.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def warm_up() -> None:
    """Import, once in this process, what every job imports on first use — the first backward
    pass alone pulls in ``torch._dynamo`` and sympy (over a second) — so forked workers share it."""
    import torch

    from ..analysis import diagnosis, stability  # noqa: F401 - imported for the workers
    from .evaluation import FunctionSession  # noqa: F401 - imported for the workers

    model = torch.nn.Linear(2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.ones(1, 2))
    out.float().sum().backward()
    torch.optim.Adam(model.parameters()).step()
    _warm_thread()
    # Hypothesis scans every newly imported local module for numeric literals to draw (a
    # quarter of a second for the suites); done here, no worker repeats it
    with contextlib.suppress(Exception):
        from hypothesis.internal.conjecture import providers

        providers._get_local_constants()


def _warm_thread() -> None:
    """A tiny steered search, once per thread: Hypothesis keeps a random generator per thread
    (registering one runs a full garbage collection, a third of a second in a process holding
    torch) and imports its optimiser on the first ``target()``, so no forked worker does either."""
    if getattr(_THREAD, "warm", False):
        return
    from hypothesis import find, settings, target
    from hypothesis import strategies as hst

    def steered(v: int) -> bool:
        target(float(v))  # imports Hypothesis's optimiser, as a search's steering does
        return v > 1

    find(hst.integers(0, 3), steered, settings=settings(database=None))
    _THREAD.warm = True


def _send(fd: int, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _Reader:
    """Length-prefixed pickles from a pipe, read with a deadline; a dead writer is ``EOFError``
    even when another process still holds a copy of the pipe's write end."""

    def __init__(self, fd: int, pid: int) -> None:
        self.fd, self.pid, self.buffer = fd, pid, b""

    def _fill(self, n: int, until: float) -> bool:
        while len(self.buffer) < n:
            left = until - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not select.select([self.fd], [], [], min(left, _POLL))[0]:
                if _exited(self.pid):
                    return False
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read(self, until: float) -> Any:
        """The next message, ``EOFError`` when the writer is gone, ``TimeoutError`` at ``until``."""
        if not self._fill(_HEADER.size, until):
            raise EOFError
        (size,) = _HEADER.unpack(self.buffer[: _HEADER.size])
        if not self._fill(_HEADER.size + size, until + 60):  # the rest of a started message
            raise EOFError
        data, self.buffer = (
            self.buffer[_HEADER.size : _HEADER.size + size],
            self.buffer[_HEADER.size + size :],
        )
        return pickle.loads(data)


def _exited(pid: int) -> bool:
    """Whether the process has ended (left a zombie, so its status can still be read)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return pid != os.getppid()  # not our child: only the supervisor, which is alive


def _setup_worker(address_space: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    import torch

    # OpenMP's thread pool does not survive fork(): one thread per worker, which is also
    # the right share when every core runs a worker
    torch.set_num_threads(1)
    if address_space is not None:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = address_space if hard == resource.RLIM_INFINITY else min(address_space, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _run_job(job: Job, fd: int) -> None:
    try:
        output = execute(job, heartbeat=lambda what: _send(fd, ("beat", what)))
        _send(fd, ("done", output))
    except BaseException:  # noqa: BLE001 - everything goes back to the supervisor
        with contextlib.suppress(BaseException):
            _send(fd, ("error", traceback.format_exc()))


def _fork(serve: Callable[[int, int], None]) -> tuple[int, int, int, int]:
    """Fork a worker that runs ``serve(commands, results)``, then exits; returns its pid, the
    supervisor's ends of the two pipes and the file the worker writes its stack to when asked
    (SIGUSR1). The worker closes every other worker's pipes and files, so only it holds its
    write end and its death reads as the end of the pipe."""
    with _FORK_LOCK:
        _warm_thread()
        commands_r, commands_w = os.pipe()
        results_r, results_w = os.pipe()
        stack = _anonymous_file()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            # the parent's objects are never collected here: a finalizer of its garbage (a
            # Dask client's __del__ waiting on its event-loop thread) would wait forever on a
            # thread that fork did not copy
            gc.freeze()
            try:
                for fd in (*_SUPERVISOR_FDS, commands_w, results_r):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                # past its deadline, the worker is asked where it is before it is killed
                with contextlib.suppress(OSError, RuntimeError, ValueError):
                    faulthandler.register(signal.SIGUSR1, file=stack, all_threads=True)
                serve(commands_r, results_w)
            finally:
                os._exit(0)
        os.close(commands_r)
        os.close(results_w)
        _SUPERVISOR_FDS.update((commands_w, results_r, stack))
    return pid, commands_w, results_r, stack


def _close(pid: int, *fds: int) -> None:
    with _FORK_LOCK:
        for fd in fds:
            _SUPERVISOR_FDS.discard(fd)
            os.close(fd)
    with contextlib.suppress(ChildProcessError):
        _reap(pid)


class _Worker:
    """A forked worker that runs job after job of one run, sent by index (it was forked after
    the jobs were made, so it holds them all)."""

    def __init__(self, jobs: Sequence[Job], address_space: int | None) -> None:
        def serve(commands: int, results: int) -> None:
            _setup_worker(address_space)
            reader = _Reader(commands, os.getppid())
            while True:
                try:
                    index = reader.read(time.monotonic() + 1e9)
                except EOFError:
                    return
                _run_job(jobs[index], results)

        self.pid, self.commands, results, self.stack = _fork(serve)
        self.reader = _Reader(results, self.pid)
        self.jobs_run = 0

    def stop(self) -> None:
        _close(self.pid, self.commands, self.reader.fd, self.stack)


def run_supervised(
    job: Job, running: Running | None = None, address_space: int | None = None
) -> JobOutput:
    """Run ``job`` in a worker forked for it alone (what a Dask worker does with each job); a
    timeout or a dead worker becomes the job's status."""

    def serve(_: int, results: int) -> None:
        _setup_worker(address_space)
        _run_job(job, results)

    pid, commands, results, stack = _fork(serve)
    try:
        return _supervise(job, pid, _Reader(results, pid), stack, running)
    finally:
        _close(pid, commands, results, stack)


class WorkerPool:
    """Long-lived workers for the jobs of one run, one per supervising thread.

    A thread forks its worker on its first job and reuses it: forking a process that holds
    torch costs tens of milliseconds, per job that was a tenth of a run of the suites. A worker
    is replaced after a timeout, a crash or an internal error, and after ``recycle_after`` jobs,
    so what one target leaks does not pile up.
    """

    def __init__(
        self, jobs: Sequence[Job], address_space: int | None, recycle_after: int = 50
    ) -> None:
        self.jobs, self.address_space, self.recycle_after = jobs, address_space, recycle_after
        self._local = threading.local()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def run(self, job: Job, running: Running | None = None) -> JobOutput:
        """Run ``job``, one of the pool's jobs, on this thread's worker."""
        assert self.jobs[job.index] is job, "a job is sent to its worker by its index"
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = _Worker(self.jobs, self.address_space)
            with self._lock:
                self._workers.append(worker)
        worker.jobs_run += 1
        with contextlib.suppress(OSError):  # a worker that is gone: its death is read below
            _send(worker.commands, job.index)
        result = _supervise(job, worker.pid, worker.reader, worker.stack, running)
        if result[0].status in _WORKER_LOST or worker.jobs_run >= self.recycle_after:
            self._local.worker = None
            with self._lock:
                self._workers.remove(worker)
            worker.stop()
        return result

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:
            w.stop()


_WORKER_LOST = frozenset({Status.TIMEOUT, Status.CRASH, Status.ERROR})


def _supervise(
    job: Job, pid: int, reader: _Reader, stack: int, running: Running | None
) -> JobOutput:
    """Follow one job on worker ``pid`` to its end: done, past its deadline, or dead."""
    doing = "starting"
    if running is not None:
        running.note(job.key, doing, pid)
    deadline = job.deadline
    try:
        while True:
            try:
                kind, payload = reader.read(time.monotonic() + deadline)
            except TimeoutError:
                where = _stuck_at(_stack_of(pid, stack))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                return _stopped(
                    job,
                    Status.TIMEOUT,
                    f"ran longer than its deadline of {deadline:g} s on {doing}{where}",
                )
            except EOFError:
                return _stopped(
                    job, Status.CRASH, f"the worker died ({_exit_status(pid)}) on {doing}"
                )
            if kind == "beat":
                doing = payload
                if running is not None:
                    running.note(job.key, payload)
            elif kind == "done":
                result: JobOutput = payload
                return result
            else:
                return _stopped(job, Status.ERROR, f"torch-stress failed:\n{payload}")
    finally:
        if running is not None:
            running.done(job.key)


def _stack_of(pid: int, stack: int, wait: float = 2.0) -> str:
    """The Python stack of the job's thread in a live worker, innermost frame first ("" when it
    cannot tell): faulthandler writes every thread's to ``stack`` on SIGUSR1."""
    if _exited(pid):
        return ""
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        return ""
    text, until = "", time.monotonic() + wait
    while time.monotonic() < until:
        time.sleep(0.05)
        now = os.pread(stack, 1 << 20, 0).decode(errors="replace")
        if now and now == text:
            break  # written in full
        text = now
    threads = re.split(r"\n(?=(?:Current thread|Thread) 0x)", text)
    # the thread that runs the job (the target may have started others)
    return next((t for t in threads if _STRESS_DIR in t), threads[0])


def _stuck_at(stack: str) -> str:
    """``; it was at losses.py:7 in f`` — the user's innermost line, and the innermost frame
    under it when that is in a library (a lock, a kernel)."""
    frames = _DUMP_LINE.findall(stack)
    if not frames:
        return ""
    import torch

    paths = sysconfig.get_paths()
    libraries = tuple(
        os.path.join(d, "")  # a folder, not every name it starts
        for d in (
            os.path.dirname(torch.__file__),
            _STRESS_DIR,
            paths["stdlib"],
            paths["purelib"],
            paths["platlib"],
            *site.getsitepackages(),
        )
    )

    def shown(frame: tuple[str, str, str]) -> str:
        return f"{os.path.basename(frame[0])}:{frame[1]} in {frame[2]}"

    stdlib = os.path.join(paths["stdlib"], "")
    # the user's innermost line, or else the innermost line of a library that is not Python's
    user = next((f for f in frames if not f[0].startswith(libraries) and "<" not in f[0]), None)
    user = user or next((f for f in frames if not f[0].startswith(stdlib)), None)
    if user is None or user == frames[0]:
        return f"; it was at {shown(user or frames[0])}"
    return f"; it was at {shown(user)}, inside {shown(frames[0])}"


def _reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _exit_status(pid: int) -> str:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name
        hint = " — killed, perhaps by the out-of-memory killer" if sig == signal.SIGKILL else ""
        return f"signal {sig}, {name}{hint}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _stopped(job: Job, status: Status, reason: str) -> JobOutput:
    target = job.target
    result = Result(
        job.name, job.mode.label, job.mode.device, status, reason=reason, source=job.source
    )
    if target is not None:
        result.expected = target.expectation(job.mode)
    return result, []


@contextlib.contextmanager
def dask_executor(address: str) -> Iterator[Executor]:
    """An executor whose jobs run, supervised the same way, on a Dask ``distributed`` cluster."""
    try:
        from distributed import Client
    except ImportError:
        raise InvalidArgument(
            f"scheduler={address!r} needs Dask distributed: pip install 'torch-stress[distributed]'"
        ) from None
    try:
        client = Client(address, timeout=30)
    except (OSError, ValueError, TypeError) as e:  # unreachable, or not an address at all
        raise InvalidArgument(
            f"scheduler={address!r}: cannot connect ({e}); give a Dask scheduler address such "
            "as tcp://host:8786"
        ) from None
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
