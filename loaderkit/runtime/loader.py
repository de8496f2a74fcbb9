"""The DataLoader: the main process owns the order, workers only read chunks.

`RecipeLoader` is a plain `torch.utils.data.DataLoader` over `ChunkDataset` whose
sampler yields this epoch's tasks (from the recipe's `Sampler`), with
`batch_size=None` so each task's chunk of batches passes through untouched.
Because the order is decided here, not in the workers, the epoch, the resume
position and the delivery order do not depend on `num_workers`, nor on which
process read a task: with workers, this process reads the task list until they
are all up and then hands them the rest (handover.py). Where a loader stands is
`EpochState` (state.py); its worker processes are a `WorkerPool` (workers.py).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import itertools
import weakref
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np
import torch
import torch.utils.data

from loaderkit.errors import RuntimeFailure, SourceError
from loaderkit.runtime import cache
from loaderkit.runtime.dataset import ChunkDataset
from loaderkit.runtime.handover import HandOver, pinned, read_here
from loaderkit.runtime.samplers import Sampler, make_sampler
from loaderkit.runtime.sources import kind_of, open_source
from loaderkit.runtime.sources import pinned as pinned_source
from loaderkit.runtime.spec import LoaderSpec, ReadSpec, SamplerSpec
from loaderkit.runtime.state import EpochState, settings
from loaderkit.runtime.tasks import StandbyTask, Task
from loaderkit.runtime.universe import ScanRun
from loaderkit.runtime.workers import (
    WorkerPool,
    from_worker,
    identity_collate,
    worker_died,
    worker_init,
)

# Passes not yet finished, weakly held: one still open when the script ends (a loop that
# stopped at its step budget, an iterator kept in a global) is closed at exit while every
# module is alive, not collected during finalization, which prints "Exception ignored".
_OPEN_PASSES: weakref.WeakSet[Iterator[Any]] = weakref.WeakSet()


@atexit.register
def _close_open_passes() -> None:
    # Registered after workers.py's exit functions (imported above), so it runs before
    # them: the passes let go of their workers first.
    for delivering in list(_OPEN_PASSES):
        with contextlib.suppress(Exception):
            delivering.close()  # type: ignore[attr-defined]


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

    def __init__(self, dataset: ChunkDataset, sampler: Sampler, loader: LoaderSpec,
                 per_batch: bool = False) -> None:
        self.row_sampler = sampler
        # One task per batch, not per chunk: see `Sampler.tasks`.
        self.per_batch = per_batch
        self._spec = loader
        self._state = EpochState(sampler.epoch_ranges, sampler.consumed)
        self._task_sampler = _TaskSampler()
        self.workers = WorkerPool(self, loader.num_workers)
        kwargs: dict[str, Any] = {}
        if loader.num_workers > 0:
            kwargs["multiprocessing_context"] = loader.multiprocessing_context
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

    # ---- what users read of a DataLoader --------------------------------------
    # torch's own batching is off (`batch_size=None` above: each task's chunk arrives
    # already batched), so torch records batch_size=None and drop_last=False. Users,
    # Lightning and Accelerate read the recipe's values instead. The setters take what
    # DataLoader.__init__ records and drop it: nothing of torch reads these two back for a
    # map-style dataset without auto-batching (it reads `batch_sampler`, which stays None),
    # and after __init__ torch's own `__setattr__` refuses any assignment to them.

    @property
    def batch_size(self) -> int:
        """The recipe's `loader.batch_size`: rows per batch on this rank."""
        return self._spec.batch_size

    @batch_size.setter
    def batch_size(self, value: int | None) -> None:
        pass

    @property
    def drop_last(self) -> bool:
        """The recipe's `loader.drop_last`."""
        return self._spec.drop_last

    @drop_last.setter
    def drop_last(self, value: bool) -> None:
        pass

    # ---- epochs -------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch of the pass in progress (or the next pass, before the first)."""
        state = self._state
        return state.epoch if state.epoch is not None else state.next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch `epoch`."""
        self._state.next_epoch = epoch

    @property
    def selected_rows(self) -> int:
        """Rows the recipe selects (after `filter`), over all ranks."""
        return self.row_sampler.universe.size

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return self.row_sampler.batches()

    @property
    def task_rows(self) -> int:
        """The most rows one task (what a worker reads at once) holds."""
        return self.row_sampler.batch_size if self.per_batch else self.row_sampler.chunk_rows

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        epoch, remaining, token = self._state.begin()
        self._task_sampler.tasks = self.row_sampler.tasks(epoch, remaining, self.per_batch)
        runs = self.row_sampler.scan_runs(epoch, remaining) if self.num_workers == 0 else None
        delivering = self._deliver(token, runs)
        _OPEN_PASSES.add(delivering)
        return delivering

    def start_workers_after(self, gate: Future[None]) -> None:
        """Start no worker before `gate` (the spawn probe) is done; re-raise its failure.

        Until then this process reads; a pass with a transform, which only workers
        run, waits for it. A loader dropped before it answers ends it (`abandon`).
        """
        self.workers.gate = gate
        abandon = getattr(gate, "abandon", None)
        if abandon is not None:
            weakref.finalize(self, abandon)

    def start_iterator(self) -> Any:
        """DataLoader's own iterator over this pass's tasks (starts or reuses workers)."""
        return super().__iter__()

    def _chunks(self, runs: tuple[ScanRun, ...] | None,
                started: list[Any]) -> Iterator[Iterable[Any]]:
        """This pass's chunks: where they are read depends on the workers and the recipe.

        `started` receives the pass's DataLoader iterator once workers start.
        """
        dataset: ChunkDataset = self.dataset  # type: ignore[assignment]
        pin = self.pin_memory and torch.cuda.is_available()
        tasks = iter(self._task_sampler.tasks)
        if runs is not None:  # 0 workers, a scan order: one stream
            return (pinned([batch], pin) for batch in dataset.stream(runs))
        if self.num_workers == 0:
            return read_here(dataset.__getitem__, tasks, pin)
        if dataset.read.transform is not None:
            # A transform runs only in the workers (a recipe's contract): they read every task.
            self._task_sampler.tasks = tasks
            started.append(self.workers.start())
            return started[0]
        # This process reads while the workers start (seconds of imports) and hands
        # the rest of the task list over once they are all up.
        standby = self.num_workers * (self.prefetch_factor or 2)
        self._task_sampler.tasks = itertools.chain(itertools.repeat(StandbyTask(), standby),
                                                   tasks)
        hand_over = HandOver(self.workers, self.persistent_workers, standby)
        started.append(hand_over)
        return hand_over.chunks(dataset.__getitem__, tasks, pin)

    def _deliver(self, token: int, runs: tuple[ScanRun, ...] | None = None) -> Iterator[Any]:
        """This pass's batches; `runs`: with 0 workers, a scan order read as one stream."""
        started: list[Any] = []
        try:
            for chunk in self._chunks(runs, started):
                for batch in chunk:
                    self._state.count(token)  # a stale iterator does not move the position
                    yield batch
        except GeneratorExit:  # the consumer let go: workers stop when collected (or persist)
            raise
        except BaseException as exc:
            workers = started[0].workers if started and isinstance(started[0], HandOver) \
                else (started[0] if started else None)
            if workers is not None:
                # The pass ends here (a dead worker, a read error, Ctrl-C): stop its
                # workers now, not when the traceback holding this frame is collected.
                self.workers.stop(workers)
            clean = from_worker(exc) if isinstance(exc, RuntimeFailure) else worker_died(exc)
            if clean is None:
                raise
            raise clean from None
        self._state.finish(token)

    def shutdown_workers(self) -> None:
        """Stop the worker processes now and wait for them, persistent ones included.

        Ends the pass in progress (its position stays in `state_dict()`); the next
        `iter(loader)` starts fresh workers. Does nothing without workers.
        """
        self.workers.shutdown()

    # ---- resume -------------------------------------------------------------

    def _recorded(self) -> dict[str, Any]:
        dataset: ChunkDataset = self.dataset  # type: ignore[assignment]
        rows = self.row_sampler
        return settings(rows.spec, self._spec, dataset.read, rows.universe.size, rows.elastic)

    def state_dict(self) -> dict[str, Any]:
        """Where this loader stands: small, JSON-able, independent of num_workers (and, for
        samplers with a global order, of the world size and batch size; docs/python.md)."""
        return self._state.as_dict(self._recorded(), self.row_sampler.batches())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next pass deliver what the saved epoch has left: the rows no rank had
        delivered (every rank having taken the saved rank's steps; `merge_states` when they
        did not), dealt to this run's ranks."""
        self._state.load(state, self._recorded())


def make_loader(read: ReadSpec, sampler: SamplerSpec, loader: LoaderSpec,
                handle: Any = None) -> RecipeLoader:
    """Build the DataLoader for one rank. Opens the source once here to plan the rows.

    An unpinned source is pinned to the version opened here, so workers read
    exactly the rows that were planned. `handle`: the source, already open (a live
    object given to `load_recipe(source=...)`).
    """
    source = read.source
    if loader.num_workers > 0 and not kind_of(source).crosses_to_workers(source):
        raise SourceError(f"{source.uri} exists only in this process; use num_workers: 0")
    from loaderkit.runtime import packing  # (it builds on this module)

    ranks, delivered = sampler, read.format
    if read.pack is not None:  # issue 25: every rank reads the global document order
        read, sampler = packing.document_read(read, sampler)
    rows_per_batch = packing.DOC_BATCH if read.pack is not None else loader.batch_size
    obj = handle if handle is not None else open_source(source)
    read = dataclasses.replace(read, source=pinned_source(source, obj))
    reader = kind_of(read.source).reader(obj, read.source, read.reads_in_flight)
    universe = reader.universe(read.engine_filter, read.split)
    schema = reader.schema(read.engine_columns)
    rows = make_sampler(sampler, universe, rows_per_batch,
                        loader.drop_last and read.pack is None, cache.fixed_bytes(schema, 1))
    held: cache.CacheRows = None
    if sampler.type == "shuffle" and sampler.mode == "cache":
        cache.check_budget(schema, universe.size, sampler.cache_mb)
        held = universe.runs([range(universe.size)]) if universe.scannable else \
            universe.ids(np.arange(universe.size, dtype=np.int64))
    dataset = ChunkDataset(read, rows_per_batch, held, sampler.cache_mb)
    # Also with workers: the main process reads each epoch's first tasks itself.
    dataset.use_reader(reader)
    # Rows that cost CPU (decoding, a transform in the workers) or hold large payloads
    # (blobs, images) go out a batch at a time: workers share them evenly, and a chunk
    # of images never sits in one process's memory.
    per_batch = bool(read.decode) or bool(read.tokenize) or bool(
        reader.payloads(read.engine_columns)) or (
        read.transform is not None and loader.num_workers > 0)
    if read.pack is not None:
        return packing.PackedLoader(dataset, rows, loader, per_batch, ranks, delivered)
    return RecipeLoader(dataset, rows, loader, per_batch)
