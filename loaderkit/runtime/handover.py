"""The standby hand-off: this process reads while the workers start, then hands them the rest.

Workers take seconds to start (a fresh interpreter imports torch and lance).
DataLoader hands each worker its first tasks the moment it starts them; the
loader fills those places with `StandbyTask`s (no rows), reads the real tasks
here meanwhile, and once every worker is up takes the standby results, which
sends each worker the next real task in the list. The order is the task list's
whoever reads a task: this process reads a prefix, the workers the rest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from torch.utils.data._utils.pin_memory import pin_memory

from loaderkit.runtime.tasks import Task
from loaderkit.runtime.workers import WorkerPool


def pinned(chunk: Iterable[Any], pin: bool) -> Iterable[Any]:
    return [pin_memory(b) for b in chunk] if pin else chunk


def read_here(read: Callable[[Task], Iterable[Any]], tasks: Iterator[Task], pin: bool,
              until: Callable[[], bool] = lambda: False) -> Iterator[Iterable[Any]]:
    """Read `tasks` in this process, one ahead on a background thread.

    Lance releases the GIL while it reads, so the read overlaps the training
    step. Takes no new task once `until()` is true after a delivered chunk;
    the one already being read is still delivered.
    """
    pool = ThreadPoolExecutor(1, thread_name_prefix="loaderkit-prefetch")
    pending: deque[Future[Iterable[Any]]] = deque()
    try:
        for task in tasks:
            pending.append(pool.submit(read, task))
            if len(pending) < 2:
                continue
            yield pinned(pending.popleft().result(), pin)
            if until():
                break
        while pending:
            yield pinned(pending.popleft().result(), pin)
    finally:
        # Also runs when an abandoned pass is collected at interpreter exit, when this
        # module's globals (contextlib, say) may already be None: builtins only here.
        try:  # noqa: SIM105 - contextlib may be gone by then
            pool.shutdown(wait=False, cancel_futures=True)
        except Exception:
            pass


class HandOver:
    """One pass: read `tasks` here until every worker is up, then let the workers read
    the rest. `standby` is how many StandbyTasks lead the workers' task list."""

    def __init__(self, pool: WorkerPool, persistent: bool, standby: int) -> None:
        self.pool, self.persistent, self.standby = pool, persistent, standby
        self.workers: Any = None  # this pass's DataLoader iterator, once started
        self.handed = False

    def started(self) -> bool:
        """Start the workers as soon as the spawn probe allows; whether they are started."""
        if self.workers is None and self.pool.may_start:
            self.workers = self.pool.start()
        return self.workers is not None

    def workers_up(self) -> bool:
        """Whether every worker is up; if so, take the standby results (the hand-off)."""
        if not self.started() or not self.pool.all_up:
            return False
        for _ in range(self.standby):
            next(self.workers)
        self.handed = True
        return True

    def chunks(self, read: Callable[[Task], Iterable[Any]], tasks: Iterator[Task],
               pin: bool) -> Iterator[Iterable[Any]]:
        self.started()  # so persistent workers already up take over after the first chunk
        yield from read_here(read, tasks, pin, until=self.workers_up)
        if self.handed:
            yield from self.workers
        elif self.workers is not None and not self.persistent:
            # This process read the whole pass before the workers were up: stop them
            # without waiting out their imports (the next pass starts new ones).
            self.pool.stop_in_background(self.workers)
