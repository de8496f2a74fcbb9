"""Worker processes: how they start, what they do first, how they stop.

Workers never see SIGINT: a terminal sends Ctrl-C to the whole process group,
and a worker interrupted mid-import or mid-batch prints a traceback and dies,
which DataLoader then reports as a crash. Ctrl-C is the main process's to
handle; it stops the workers (`WorkerPool.shutdown`, or dropping the iterator).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import Future
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from loaderkit.errors import RuntimeFailure, WorkerDied

# How DataLoader re-raises a worker's exception: same type, the worker's traceback as message.
_WORKER_ERROR = re.compile(r"Caught \w+ (in DataLoader worker process \d+)\.\nOriginal ")


def identity_collate(batches: Any) -> Any:
    """The task already returns finished batches; module-level so spawn can pickle it."""
    return batches


def worker_init(worker_id: int) -> None:
    """`worker_init_fn`: what a worker process needs before it reads anything.

    - Ctrl-C is the main process's to handle, never a worker's. Workers already
      start with SIGINT blocked (the loader starts them so; the mask survives
      exec); ignoring it too covers forkserver workers, forked by a server that
      was started earlier, and any thread that unblocks signals.
    - A worker told to stop while its queue's feeder thread is still pickling a
      batch must not finalize the interpreter under that thread: the thread is in
      torch's C++ (sharing a tensor's storage) and is killed by `pthread_exit` when
      it asks for the GIL back, which aborts the process ("terminate called without
      an active exception"), and DataLoader then reports the worker as crashed. So
      the worker waits for the feeder first (it finishes in milliseconds: the batch
      goes into the pipe), and leaves without finalizing only if it cannot.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    atexit.register(_exit_before_finalizing)


class WorkerStart:
    """`worker_init_fn` that also counts, in a shared `ready` counter, the workers that are up,
    and ties each worker's life to the process that started it (`end_with_parent`).

    It runs once the worker has imported torch, lance and loaderkit (unpickling the
    dataset), so a worker counted here reads its next task at once.
    """

    def __init__(self, ready: Any, start_method: str | None) -> None:
        self.ready = ready
        self.alive = _alive_reader()
        # A parent-death signal fires when the *thread* that started the worker ends: safe
        # only for the main thread (or a forkserver, whose one thread forks every worker).
        self.death_signal = start_method != "spawn" or \
            threading.current_thread() is threading.main_thread()

    def __call__(self, worker_id: int) -> None:
        worker_init(worker_id)
        end_with_parent(self.alive, self.death_signal)
        with self.ready.get_lock():
            self.ready.value += 1


# --- a worker ends with the process that started it -----------------------------------------
#
# DataLoader's own watchdog in the worker compares os.getppid() with the parent it saw
# when its loop started, seconds after the worker was spawned (imports, unpickling): a
# parent that died meanwhile is never noticed, and the worker serves no one for ever
# (the resource tracker with it, which waits for every process holding its pipe).

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCH_SECONDS = 0.5
_alive_pipe: tuple[Connection, Connection] | None = None


def _alive_reader() -> Connection:
    """The read end of a pipe whose write end only this process holds, until it dies.

    A worker that sees end-of-file on it knows that its loader's process is gone,
    however it died and whenever (before the worker was up too), and whichever
    process forked it (a forkserver).
    """
    global _alive_pipe
    if _alive_pipe is None:
        _alive_pipe = multiprocessing.Pipe(duplex=False)
    return _alive_pipe[0]


def end_with_parent(alive: Connection, death_signal: bool) -> None:
    """In a worker: end this process when the loader's process ends, SIGKILL included.

    Linux's parent-death signal acts even while this process holds the GIL; the
    watch thread covers every platform and start method.
    """
    if death_signal and sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL),
                                                    0, 0, 0)
    threading.Thread(target=_watch_parent, args=(alive, os.getppid()),
                     name="loaderkit-parent-watch", daemon=True).start()


def _watch_parent(alive: Connection, parent: int) -> None:
    # poll() is true at end-of-file; a changed parent pid means this process was
    # re-parented (a fork of the loader's process may hold the pipe's write end).
    while not alive.poll(_WATCH_SECONDS):
        if os.getppid() != parent:
            break
    os._exit(1)  # nothing to save: no one reads this worker's batches any more


def _exit_before_finalizing() -> None:
    # atexit runs before the interpreter starts finalizing: give the feeder thread a
    # moment to finish the batch in hand (torch has already closed the queue, so it
    # then ends), and leave without finalizing if it is stuck (a full pipe).
    feeders = [t for t in threading.enumerate() if t.name == "QueueFeederThread"]
    deadline = time.monotonic() + 1.0
    for thread in feeders:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in feeders):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)


@contextlib.contextmanager
def sigint_blocked(start_method: str | None) -> Iterator[None]:
    """SIGINT blocked in this thread while the block starts worker processes.

    A child inherits the blocked mask across fork and exec, and Python leaves it
    so, so a worker never sees Ctrl-C, from its first instruction on (a
    `worker_init_fn` runs only after the worker has imported torch, seconds
    later). Blocking, unlike ignoring, loses nothing in this process: a Ctrl-C
    meanwhile is taken by another thread, or stays pending until the mask is put
    back. (CPython starts its resource tracker the same way.)
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no process groups to worry about
        yield
        return
    if start_method != "fork":
        # Started inside the block, the resource tracker would *unblock* SIGINT in this
        # thread (its start blocks then unblocks, rather than restoring) before the
        # workers fork. spawn and forkserver workers need it anyway; started, it stays.
        resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def from_worker(exc: RuntimeFailure) -> RuntimeFailure | None:
    """A loaderkit error raised in a worker, with its own message, or None if it is not one.

    DataLoader re-raises it in the main process as the same type whose message is
    the worker's whole traceback, the engine error it wraps (and that error's Rust
    source locations) included. The error's own message already names what went
    wrong; keep that, say which worker (on its first line: a user-code error's
    frames follow it), and keep the traceback on `worker_traceback`.
    """
    text = str(exc)
    match = _WORKER_ERROR.match(text)
    last_line = f"\n{type(exc).__module__}.{type(exc).__qualname__}: "
    at = text.rfind(last_line)
    if match is None or at < 0:
        return None
    first, _, rest = text[at + len(last_line):].rstrip().partition("\n")
    message = f"{first} ({match.group(1)})" + (f"\n{rest}" if rest else "")
    clean = type(exc)(message)
    clean.worker_traceback = text
    return clean


# --- a worker that died -------------------------------------------------------------------

# DataLoader's reports of a dead worker: its SIGCHLD handler's ("DataLoader worker (pid 7)
# is killed by signal: Killed.", "... exited unexpectedly with exit code 1") and the one
# it raises when a worker it waited for is gone ("DataLoader worker (pid(s) 7, 8) exited
# unexpectedly").
_DEAD_WORKER = re.compile(r"^DataLoader worker \(pid(?:\(s\))? (\d+)[\d, ]*\) "
                          r"(?:is killed by signal|exited unexpectedly)")
_SIGNAL_NAMES = {signal.strsignal(s): s.name for s in signal.Signals if signal.strsignal(s)}
_LIKELY_CAUSE = {
    "SIGKILL": "most likely out of memory: the kernel's OOM killer sends SIGKILL (the kernel "
               "log says so: dmesg | grep -i oom); lower num_workers, prefetch_factor or "
               "chunk_rows, or give the job more memory",
    "SIGBUS": "most likely out of shared memory (/dev/shm; in a container, raise --shm-size)",
    "SIGSEGV": "a crash in native code (an extension the transform uses, or the engine)",
    "SIGABRT": "a crash in native code (an extension the transform uses, or the engine)",
    "SIGTERM": "something outside the loader stopped it (kill, a job scheduler)",
}

# DataLoader iterators whose workers this process started; weakly held, as a collected
# iterator has stopped its workers.
_STARTED: weakref.WeakSet[Any] = weakref.WeakSet()
# Threads stopping the workers a pass did not need (`WorkerPool.stop_in_background`).
_STOPPING: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
STOP_AT_EXIT_SECONDS = 30.0


def worker_died(exc: BaseException, ours_only: bool = False) -> WorkerDied | None:
    """DataLoader's RuntimeError about a dead worker as a WorkerDied saying which worker,
    how it ended and why that likely was; None for any other error (and, with
    `ours_only`, for a worker of a DataLoader that loaderkit did not build)."""
    match = _DEAD_WORKER.match(str(exc)) if type(exc) is RuntimeError else None
    if match is None:
        return None
    pid = int(match.group(1))
    worker_id, exitcode = _worker_of(pid)
    if ours_only and worker_id is None:
        return None
    name = None
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            name = signal.Signals(-exitcode).name
    elif exitcode is None:  # not reaped here: DataLoader's text names the signal
        said = re.search(r"killed by signal: (.+?)\.", str(exc))
        name = _SIGNAL_NAMES.get(said.group(1)) if said else None
    who = f"DataLoader worker {worker_id}" if worker_id is not None else "a DataLoader worker"
    if name is not None:
        how = f"was killed by {name}: {_LIKELY_CAUSE.get(name, 'a signal from outside')}"
    elif exitcode:
        how = (f"exited with status {exitcode}: code it ran ended the process (sys.exit or "
               "os._exit in a transform or connection factory?)")
    else:
        how = "exited unexpectedly"
    return WorkerDied(f"{who} (pid {pid}) {how}. The batches delivered before it stay "
                      "counted: loader.state_dict() resumes this epoch exactly",
                      worker_id=worker_id, pid=pid, signal=name, exitcode=exitcode)


def _worker_of(pid: int) -> tuple[int | None, int | None]:
    """The worker id of the process `pid` among this process's loaders, and its exit code."""
    for iterator in list(_STARTED):
        for worker_id, process in enumerate(getattr(iterator, "_workers", ())):
            if process.pid == pid:
                return worker_id, process.exitcode
    return None, None


class _WorkerDeathHandler:
    """DataLoader's SIGCHLD handler, raising WorkerDied for the RuntimeError it raises.

    It raises wherever the main thread is when a worker dies, often in the training
    step. Inside a loader's pass the error is left as it is: the pass translates it
    itself once it has stopped its workers (and Lance, which runs signal handlers
    while it reads, passes on only the builtin exceptions).
    """

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        try:
            self.previous(signum, frame)
        except RuntimeError as exc:
            died = None if _in_a_pass(frame) else worker_died(exc, ours_only=True)
            if died is None:
                raise
            raise died from None


def _in_a_pass(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "_deliver" and \
                frame.f_globals.get("__name__") == "loaderkit.runtime.loader":
            return True
        frame = frame.f_back
    return False


def _report_deaths_as_worker_died() -> None:
    """Wrap DataLoader's SIGCHLD handler, once it is installed (by the first iterator with
    workers); only the main thread may install a handler."""
    if not hasattr(signal, "SIGCHLD") or threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGCHLD)
    if callable(current) and not isinstance(current, _WorkerDeathHandler):
        signal.signal(signal.SIGCHLD, _WorkerDeathHandler(current))


# --- stopping ------------------------------------------------------------------------------

def forget_pids(iterator: Any) -> None:
    """Take `iterator`'s workers off DataLoader's watch for dead workers: their end is no
    failure now. Only the thread that stops them may call this (DataLoader's shutdown
    removes them once, and fails on a second removal)."""
    if getattr(iterator, "_worker_pids_set", False):
        iterator._worker_pids_set = False
        from torch.utils.data._utils import signal_handling

        with contextlib.suppress(Exception):
            signal_handling._remove_worker_pids(id(iterator))


@atexit.register
def _forget_workers_at_exit() -> None:
    # Registered after multiprocessing's exit function (imported above), so it runs first.
    # That function terminates every daemonic child, workers included, and DataLoader's
    # SIGCHLD handler then reports each as "killed by signal: Terminated" from inside it
    # ("Exception ignored in atexit callback"). A clean exit prints nothing.
    for iterator in list(_STARTED):
        forget_pids(iterator)
    # A background stop (a daemon, so that an exit never waits on workers still importing)
    # must not run on into the interpreter's finalization, where a thread that takes the
    # GIL back is ended mid-call: let it finish while everything is alive, within a bound.
    for thread in list(_STOPPING):
        thread.join(STOP_AT_EXIT_SECONDS)


class WorkerPool:
    """A loader's worker processes across passes: started after the spawn probe (`gate`),
    counted as they come up (`ready`), stopped when a pass no longer needs them.

    `start()` returns a pass's DataLoader iterator: fresh workers, or the persistent
    ones. `loader` is the RecipeLoader; `start_iterator` is DataLoader's own __iter__.
    """

    def __init__(self, loader: Any, count: int) -> None:
        # Weakly: the loader owns the pool, and a dropped loader must go at once (with
        # what it ends when collected, its spawn probe), not at the next garbage collection.
        self._loader = weakref.ref(loader)
        self.count = count
        self.ready: Any = None  # shared count of this loader's workers that are up
        self.gate: Future[None] | None = None  # the spawn probe workers wait for, if any
        self._stopping: threading.Thread | None = None  # stops workers a pass did not need
        self._current: weakref.ref[Any] | None = None  # this pass's DataLoader iterator

    @property
    def loader(self) -> Any:
        return self._loader()

    @property
    def may_start(self) -> bool:
        """Whether the spawn probe (if any) has finished, so workers may start now."""
        return self.gate is None or self.gate.done()

    @property
    def up(self) -> int:
        """How many of this pass's workers are up (have imported everything)."""
        return int(self.ready.value) if self.ready is not None else 0

    @property
    def all_up(self) -> bool:
        return self.up >= self.count

    @property
    def started(self) -> bool:
        """Whether workers were started for the pass in progress (or the last one)."""
        return self._current is not None

    def start(self) -> Any:
        """This pass's DataLoader iterator: fresh workers, or the persistent ones."""
        loader = self.loader
        if self.gate is not None:
            self.gate.result()  # waits for the spawn probe; raises its RecipeError
        if self._stopping is not None:
            # The last pass's unneeded workers first: short passes must not pile up
            # sets of workers that are all still importing.
            self._stopping.join()
            self._stopping = None
        context = loader.multiprocessing_context
        if self.ready is None:
            self.ready = context.Value("i", 0)
        if not (loader.persistent_workers and loader._iterator is not None):
            self.ready.value = 0  # fresh workers count themselves in
        # Set only while the workers start: the counter crosses to them as they are
        # spawned, and cannot be pickled at any other time (the build's safety check).
        start_method = getattr(context, "get_start_method", lambda: None)()
        loader.worker_init_fn = WorkerStart(self.ready, start_method)
        try:
            with sigint_blocked(start_method):
                iterator = loader.start_iterator()
        finally:
            loader.worker_init_fn = worker_init
        _STARTED.add(iterator)
        _report_deaths_as_worker_died()
        self._current = weakref.ref(iterator)
        return iterator

    def stop(self, iterator: Any) -> None:
        """Stop one pass's workers now and wait for them (never hiding the error that
        ended the pass)."""
        with contextlib.suppress(Exception):
            iterator._shutdown_workers()
        loader = self.loader
        if loader is not None and iterator is loader._iterator:
            loader._iterator = None  # persistent workers: the next pass starts new

    def stop_in_background(self, iterator: Any) -> None:
        """Stop workers a pass did not need without waiting out their imports."""
        forget_pids(iterator)  # here, so that the stopping thread never removes them too
        self._stopping = threading.Thread(target=self.stop, args=(iterator,),
                                          name="loaderkit-stop", daemon=True)
        _STOPPING.add(self._stopping)
        self._stopping.start()

    def shutdown(self) -> None:
        """Stop every worker process now and wait for them, persistent ones included."""
        running = self._current() if self._current is not None else None
        self._current = None
        for iterator in (running, self.loader._iterator):
            stop = getattr(iterator, "_shutdown_workers", None)
            if callable(stop):
                stop()
        self.loader._iterator = None
        if self._stopping is not None:
            self._stopping.join()
            self._stopping = None
