"""Worker processes: how they start, what they do first, how they stop.

Workers never see SIGINT: a terminal sends Ctrl-C to the whole process group,
and a worker interrupted mid-import or mid-batch prints a traceback and dies,
which DataLoader then reports as a crash. Ctrl-C is the main process's to
handle; it stops the workers (`WorkerPool.shutdown`, or dropping the iterator).
"""

from __future__ import annotations

import atexit
import contextlib
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
from typing import Any

from loaderkit.errors import RuntimeFailure

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
    """`worker_init_fn` that also counts, in a shared `ready` counter, the workers that are up.

    It runs once the worker has imported torch, lance and loaderkit (unpickling the
    dataset), so a worker counted here reads its next task at once.
    """

    def __init__(self, ready: Any) -> None:
        self.ready = ready

    def __call__(self, worker_id: int) -> None:
        worker_init(worker_id)
        with self.ready.get_lock():
            self.ready.value += 1


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


class WorkerPool:
    """A loader's worker processes across passes: started after the spawn probe (`gate`),
    counted as they come up (`ready`), stopped when a pass no longer needs them.

    `start()` returns a pass's DataLoader iterator: fresh workers, or the persistent
    ones. `loader` is the RecipeLoader; `start_iterator` is DataLoader's own __iter__.
    """

    def __init__(self, loader: Any, count: int) -> None:
        self.loader = loader
        self.count = count
        self.ready: Any = None  # shared count of this loader's workers that are up
        self.gate: Future[None] | None = None  # the spawn probe workers wait for, if any
        self._stopping: threading.Thread | None = None  # stops workers a pass did not need
        self._current: weakref.ref[Any] | None = None  # this pass's DataLoader iterator

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
        loader.worker_init_fn = WorkerStart(self.ready)
        try:
            with sigint_blocked(getattr(context, "get_start_method", lambda: None)()):
                iterator = loader.start_iterator()
        finally:
            loader.worker_init_fn = worker_init
        self._current = weakref.ref(iterator)
        return iterator

    def stop(self, iterator: Any) -> None:
        """Stop one pass's workers now and wait for them (never hiding the error that
        ended the pass)."""
        with contextlib.suppress(Exception):
            iterator._shutdown_workers()
        if iterator is self.loader._iterator:  # persistent workers: the next pass starts new
            self.loader._iterator = None

    def stop_in_background(self, iterator: Any) -> None:
        """Stop workers a pass did not need without waiting out their imports."""
        self._stopping = threading.Thread(target=self.stop, args=(iterator,),
                                          name="loaderkit-stop", daemon=True)
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
