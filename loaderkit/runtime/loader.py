"""The DataLoader: main-process order, workers that only read chunks.

`RecipeLoader` is a plain `torch.utils.data.DataLoader` over `ChunkDataset`
whose sampler yields this epoch's chunk tasks (from `ChunkPlan`), with
`batch_size=None` so each task's list of batches passes through untouched.
Because the order is decided here, not in the workers, the epoch, the resume
position and the delivery order do not depend on `num_workers`, nor on which
process read a task: with workers, this process reads the task list until they
are all up and then hands them the rest (`_hand_over`).

Workers never see SIGINT: a terminal sends Ctrl-C to the whole process group,
and a worker interrupted mid-import or mid-batch prints a traceback and dies,
which DataLoader then reports as a crash. Ctrl-C is the main process's to
handle; it stops the workers (`shutdown_workers`, or dropping the iterator).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import re
import signal
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing import resource_tracker
from typing import Any

import pyarrow as pa
import torch
import torch.utils.data
from torch.utils.data._utils.pin_memory import pin_memory as _pin

from loaderkit.errors import CacheBudgetError, ResumeError, RuntimeFailure, SourceError
from loaderkit.runtime.dataset import (
    DEFAULT_CACHE_MB,
    ChunkDataset,
    WorkerStart,
    identity_collate,
    worker_init,
)
from loaderkit.runtime.plans import ChunkPlan, ScanRun, StandbyTask, Task
from loaderkit.runtime.sources import open_source, reader_for
from loaderkit.runtime.spec import LoaderSpec, ReadSpec, SamplerSpec
from loaderkit.vocabulary import resolve_text

# Settings that fix the order of an epoch: a resume under any other value would
# deliver a different sequence, so it is refused rather than silently wrong.
_ORDER_KEYS = (
    "sampler",
    "mode",
    "seed",
    "world_size",
    "rank",
    "batch_size",
    "drop_last",
    "uneven",
    "block_rows",
    "chunk_rows",
    "rows_per_epoch",
)


# How DataLoader re-raises a worker's exception: same type, the worker's traceback as message.
_WORKER_ERROR = re.compile(r"Caught \w+ (in DataLoader worker process \d+)\.\nOriginal ")


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


def _from_worker(exc: RuntimeFailure) -> RuntimeFailure | None:
    """A loaderkit error raised in a worker, with its own message, or None if it is not one.

    DataLoader re-raises it in the main process as the same type whose message is
    the worker's whole traceback, the engine error it wraps (and that error's Rust
    source locations) included. The error's own message already names what went
    wrong; keep that, say which worker, and keep the traceback on `worker_traceback`.
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


class _TaskSampler(torch.utils.data.Sampler):
    """The DataLoader's sampler: yields whatever task stream the loader set for this pass."""

    def __init__(self) -> None:
        self.tasks: Iterable[Task] = ()

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)


class RecipeLoader(torch.utils.data.DataLoader):
    """A DataLoader that delivers batches of a recipe, epoch-aware and resumable.

    Each `iter(loader)` is the next epoch (the first is 0, or whatever
    `set_epoch` said). `state_dict()` / `load_state_dict()` follow torchdata's
    StatefulDataLoader convention: a fresh loader given a saved state delivers
    exactly the batches of that epoch not yet delivered, in the same order.
    """

    def __init__(
        self,
        dataset: ChunkDataset,
        plan: ChunkPlan,
        sampler: SamplerSpec,
        loader: LoaderSpec,
    ) -> None:
        self._plan = plan
        self._sampler_spec = sampler
        self._loader_spec = loader
        self._task_sampler = _TaskSampler()
        self._next_epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches already delivered)
        self._epoch: int | None = None  # epoch of the pass in progress or last started
        self._delivered = 0
        self._finished = False
        self._pass = 0
        self._workers: weakref.ref[Any] | None = None  # this pass's DataLoader iterator
        self._ready: Any = None  # shared count of this loader's workers that are up
        self._stopping: threading.Thread | None = None  # stops workers a pass did not need
        self._gate: Future[None] | None = None  # the spawn probe workers wait for, if any
        kwargs: dict[str, Any] = {}
        if loader.num_workers > 0:
            # Lance is not fork-safe; spawn is the documented default.
            kwargs["multiprocessing_context"] = loader.multiprocessing_context or "spawn"
            kwargs["worker_init_fn"] = worker_init
            kwargs["persistent_workers"] = loader.persistent_workers
            if loader.prefetch_factor is not None:
                kwargs["prefetch_factor"] = loader.prefetch_factor
        super().__init__(
            dataset,
            batch_size=None,
            sampler=self._task_sampler,
            collate_fn=identity_collate,
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
            timeout=loader.timeout,
            **kwargs,
        )

    # ---- epochs -------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch of the pass in progress (or the next pass, before the first)."""
        return self._epoch if self._epoch is not None else self._next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch `epoch`."""
        self._next_epoch = epoch

    @property
    def selected_rows(self) -> int:
        """Rows the recipe selects (after `filter`), over all ranks."""
        return self._plan.universe.size

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return self._plan.batches()

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        epoch = self._next_epoch
        skip = self._resume[1] if self._resume and self._resume[0] == epoch else 0
        self._resume = None
        self._pass += 1
        self._epoch, self._delivered, self._finished = epoch, skip, False
        self._next_epoch = epoch + 1
        self._task_sampler.tasks = self._plan.tasks(epoch, skip)
        runs = self._plan.scan_runs(epoch, skip) if self.num_workers == 0 else None
        return self._deliver(self._pass, runs)

    def start_workers_after(self, gate: Future[None]) -> None:
        """Start no worker before `gate` (the spawn probe) is done; re-raise its failure.

        Until then this process reads; a pass with a transform, which only workers
        run, waits for it.
        """
        self._gate = gate

    def _deliver(self, token: int, runs: tuple[ScanRun, ...] | None = None) -> Iterator[Any]:
        """This pass's batches; `runs`: with 0 workers, a scan order read as one stream."""
        chunks: Iterator[Iterable[Any]]
        workers: Any = None
        tasks = iter(self._task_sampler.tasks)
        dataset: ChunkDataset = self.dataset  # type: ignore[assignment]

        def start() -> Any:
            nonlocal workers
            workers = self._start_workers()
            return workers

        if runs is not None:
            pin = self.pin_memory and torch.cuda.is_available()
            chunks = (self._maybe_pin([batch], pin) for batch in dataset.stream(runs))
        elif self.num_workers == 0:
            chunks = self._read_here(tasks)
        elif dataset.read.transform is not None:
            # A transform runs only in the workers (a recipe's contract): they read every task.
            self._task_sampler.tasks = tasks
            chunks = start()
        else:
            # This process reads while the workers start (seconds of imports) and
            # hands the rest of the task list over once they are all up.
            standby = self.num_workers * (self.prefetch_factor or 2)
            self._task_sampler.tasks = itertools.chain(
                itertools.repeat(StandbyTask(), standby), tasks
            )
            chunks = self._hand_over(tasks, start, standby)
        try:
            for chunk in chunks:
                for batch in chunk:
                    if token == self._pass:  # a stale iterator must not move the position
                        self._delivered += 1
                    yield batch
        except GeneratorExit:  # the consumer let go: workers stop when collected (or persist)
            raise
        except BaseException as exc:
            if workers is not None:
                # The pass ends here (a dead worker, a read error, Ctrl-C): stop its
                # workers now, not when the traceback holding this frame is collected.
                self._stop(workers)
            clean = _from_worker(exc) if isinstance(exc, RuntimeFailure) else None
            if clean is None:
                raise
            raise clean from None
        if token == self._pass:
            self._finished = True

    def _start_workers(self) -> Any:
        """This pass's DataLoader iterator: fresh workers, or the persistent ones."""
        if self._gate is not None:
            self._gate.result()  # waits for the spawn probe; raises its RecipeError
        if self._stopping is not None:
            # The last pass's unneeded workers first: short passes must not pile up
            # sets of workers that are all still importing.
            self._stopping.join()
            self._stopping = None
        context = self.multiprocessing_context
        if self._ready is None:
            self._ready = context.Value("i", 0)
        if not (self.persistent_workers and self._iterator is not None):
            self._ready.value = 0  # fresh workers count themselves in
        # Set only while the workers start: the counter crosses to them as they are
        # spawned, and cannot be pickled at any other time (the build's safety check).
        self.worker_init_fn = WorkerStart(self._ready)
        try:
            with sigint_blocked(getattr(context, "get_start_method", lambda: None)()):
                workers = super().__iter__()
        finally:
            self.worker_init_fn = worker_init
        self._workers = weakref.ref(workers)
        return workers

    def _hand_over(
        self, tasks: Iterator[Task], start: Callable[[], Any], standby: int
    ) -> Iterator[Iterable[Any]]:
        """Read `tasks` here until every worker is up, then let the workers read the rest.

        Workers are started (`start()`) as soon as the spawn probe allows, at the
        pass's start or between two chunks. The order is the task list's whoever
        reads a task: this process reads a prefix of it, and the workers' first
        real tasks are the ones after it (each standby result taken sends a worker
        the next task in the list).
        """
        workers: Any = None
        handed = False

        def started() -> bool:
            nonlocal workers
            if workers is None and (self._gate is None or self._gate.done()):
                workers = start()
            return workers is not None

        def workers_up() -> bool:
            nonlocal handed
            if not started() or self._ready.value < self.num_workers:
                return False
            for _ in range(standby):
                next(workers)
            handed = True
            return True

        started()  # so persistent workers already up take over after the first chunk
        yield from self._read_here(tasks, until=workers_up)
        if handed:
            yield from workers
        elif workers is not None and not self.persistent_workers:
            # This process read the whole pass before the workers were up: stop them
            # without waiting out their imports (the next pass starts new ones).
            self._stopping = threading.Thread(
                target=self._stop, args=(workers,), name="loaderkit-stop", daemon=True
            )
            self._stopping.start()

    def _stop(self, workers: Any) -> None:
        with contextlib.suppress(Exception):  # never hide the error that ended the pass
            workers._shutdown_workers()
        if workers is self._iterator:  # persistent workers: the next pass starts new ones
            self._iterator = None

    def shutdown_workers(self) -> None:
        """Stop the worker processes now and wait for them, persistent ones included.

        Ends the pass in progress (its position stays in `state_dict()`); the next
        `iter(loader)` starts fresh workers. Does nothing without workers.
        """
        running = self._workers() if self._workers is not None else None
        self._workers = None
        for iterator in (running, self._iterator):
            stop = getattr(iterator, "_shutdown_workers", None)
            if callable(stop):
                stop()
        self._iterator = None
        if self._stopping is not None:
            self._stopping.join()
            self._stopping = None

    def _read_here(
        self, tasks: Iterator[Task], until: Callable[[], bool] = lambda: False
    ) -> Iterator[Iterable[Any]]:
        """Read `tasks` in this process, one ahead on a background thread.

        Lance releases the GIL while it reads, so the read overlaps the training
        step. Takes no new task once `until()` is true after a delivered chunk;
        the one already being read is still delivered.
        """
        dataset: ChunkDataset = self.dataset  # type: ignore[assignment]
        pin = self.pin_memory and torch.cuda.is_available()
        pool = ThreadPoolExecutor(1, thread_name_prefix="loaderkit-prefetch")
        pending: deque[Future[Iterable[Any]]] = deque()
        try:
            for task in tasks:
                pending.append(pool.submit(dataset.__getitem__, task))
                if len(pending) < 2:
                    continue
                yield self._maybe_pin(pending.popleft().result(), pin)
                if until():
                    break
            while pending:
                yield self._maybe_pin(pending.popleft().result(), pin)
        finally:
            # Also runs when an abandoned pass is collected at interpreter exit,
            # when the executor's module may already be torn down.
            with contextlib.suppress(Exception):
                pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _maybe_pin(chunk: Iterable[Any], pin: bool) -> Iterable[Any]:
        return [_pin(b) for b in chunk] if pin else chunk

    # ---- resume -------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        s, ld = self._sampler_spec, self._loader_spec
        return {
            "sampler": s.type,
            "mode": s.mode,
            "seed": s.seed,
            "world_size": s.world_size,
            "rank": s.rank,
            "batch_size": ld.batch_size,
            "drop_last": ld.drop_last,
            "uneven": s.uneven,
            "block_rows": s.block_rows,
            "chunk_rows": s.chunk_rows,
            "rows_per_epoch": self._plan.rows(),
            "num_workers": ld.num_workers,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where this loader stands: small, JSON-able, independent of num_workers."""
        if self._epoch is not None and not self._finished:
            epoch, delivered = self._epoch, self._delivered
        elif self._resume is not None and self._resume[0] == self._next_epoch:
            epoch, delivered = self._resume
        else:
            epoch, delivered = self._next_epoch, 0
        return {
            "epoch": epoch,
            "batches_delivered": delivered,
            **self._settings(),
            "batches_per_epoch": self._plan.batches(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next pass finish the saved epoch exactly as an uninterrupted run would."""
        mine = self._settings()
        changed = [
            f"{k}: saved {state.get(k)!r}, now {mine[k]!r}"
            for k in _ORDER_KEYS
            if k in state and state[k] != mine[k]
        ]
        if changed:
            raise ResumeError(
                "cannot resume: settings that fix the epoch order changed ("
                + "; ".join(changed)
                + "); resume with the saved settings or start a new epoch"
            )
        epoch, delivered = int(state["epoch"]), int(state["batches_delivered"])
        if not 0 <= delivered <= self._plan.batches(epoch):
            raise ResumeError(
                f"cannot resume: {delivered} batches delivered but an epoch has "
                f"{self._plan.batches(epoch)}"
            )
        self._next_epoch = epoch
        self._resume = (epoch, delivered)
        self._epoch, self._finished = None, False


def _estimated_bytes(schema: pa.Schema, rows: int) -> int:
    """Lower bound of the cache size from fixed-width types (variable width counts 0)."""
    per_row = 0
    for f in schema:
        t, width = f.type, 1
        while pa.types.is_fixed_size_list(t):
            width *= t.list_size
            t = t.value_type
        with contextlib.suppress(ValueError):  # variable width: checked while loading
            per_row += width * max(1, t.bit_width // 8)
    return per_row * rows


def make_loader(read: ReadSpec, sampler: SamplerSpec, loader: LoaderSpec,
                handle: Any = None) -> RecipeLoader:
    """Build the DataLoader for one rank. Opens the source once here to plan the rows.

    An unpinned source is pinned to the version opened here, so workers read
    exactly the rows that were planned. `handle`: the source, already open (a live
    object given to `load_recipe(source=...)`).
    """
    source = read.source
    if loader.num_workers > 0 and (source.live or (
            resolve_text(source.uri).startswith("memory://")
            and source.connection_factory is None)):
        raise SourceError("a memory:// database exists only in this process; use num_workers: 0")
    obj = handle if handle is not None else open_source(source)
    if source.version is None:
        read = dataclasses.replace(read, source=dataclasses.replace(source, version=obj.version))
    reader = reader_for(obj, read.source)
    universe = reader.universe(read.filter)
    row_bytes = _estimated_bytes(reader.schema(read.columns), 1)
    plan = ChunkPlan(sampler, universe, loader.batch_size, loader.drop_last, row_bytes)
    cache_runs = None
    if sampler.type == "shuffle" and sampler.mode == "cache":
        budget_mb = sampler.cache_mb if sampler.cache_mb is not None else DEFAULT_CACHE_MB
        need = _estimated_bytes(reader.schema(read.columns), universe.size)
        if need > budget_mb * 1024 * 1024:
            raise CacheBudgetError(
                f"shuffle mode 'cache' needs at least {need / 2**20:.0f} MB for the selected "
                f"columns but cache_mb is {budget_mb}; raise sampler.cache_mb, select fewer "
                "columns, or use mode 'block'"
            )
        cache_runs = universe.runs([range(universe.size)])
    dataset = ChunkDataset(read, loader.batch_size, cache_runs, sampler.cache_mb)
    # Also with workers: the main process reads each epoch's first tasks itself.
    dataset.use_reader(reader)
    return RecipeLoader(dataset, plan, sampler, loader)
