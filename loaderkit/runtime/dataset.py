"""What runs in a worker: one chunk task in, a list of finished batches out.

The dataset holds only picklable specs. The source, the transform and the
shuffle cache are opened lazily, once per process, and dropped on pickling, so
a spawned worker opens its own handle (and reads its own secrets).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.utils.data

from loaderkit.errors import CacheBudgetError, TransformError
from loaderkit.references import call_user, import_attr
from loaderkit.runtime.formats import ARROW, BatchFormat, batch_format
from loaderkit.runtime.gathering import empty_rows, gather, take_into
from loaderkit.runtime.plans import CacheTask, ScanRun, ScanTask, StandbyTask, TakeTask, Task
from loaderkit.runtime.sources import Reader, open_reader
from loaderkit.runtime.spec import ReadSpec

# Cache gathers of at least twice this many rows are split over two threads.
GATHER_SPLIT_ROWS = 2048
# Used when SamplerSpec.cache_mb is None: a cap, so a typo'd recipe cannot eat the host.
DEFAULT_CACHE_MB = 4096
# Scanner batches read ahead when the recipe leaves `batch_readahead` unset: pylance's
# LanceDataset default. Lance's own default scanned 1M rows 25% slower here.
SCAN_READAHEAD = 16


def identity_collate(batches: list[Any]) -> list[Any]:
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


def rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Exactly `batch_size` rows per batch (the last may be shorter), as they arrive.

    Scanners cut short at the end of a run; only the rows that fill such a
    short batch are copied, and full batches pass through untouched.
    """
    pending: list[pa.RecordBatch] = []  # pieces of the next batch, `have` rows
    have = 0
    for batch in batches:
        if not pending and batch.num_rows == batch_size:  # the common case, as it came
            yield batch
            continue
        start = 0
        while start < batch.num_rows:
            if not pending and batch.num_rows - start >= batch_size:
                yield batch.slice(start, batch_size)  # zero-copy
                start += batch_size
                continue
            piece = batch.slice(start, min(batch_size - have, batch.num_rows - start))
            pending.append(piece)
            have += piece.num_rows
            start += piece.num_rows
            if have == batch_size:
                yield _one_batch(pending)
                pending, have = [], 0
    if pending:
        yield _one_batch(pending)


class _Cache:
    """Shuffle `cache` mode: the selected columns of the whole universe, in memory.

    A gathering format's columns are converted once (so a column the format
    cannot hold fails at load, not mid-epoch) and held as C-contiguous numpy
    arrays: a chunk is one row gather over every column (`gathering.take_into`).
    Not `torch.index_select`: torch's intra-op thread pool collapses (5-20x
    slower, measured) when the cores are oversubscribed, the normal state of a
    host feeding a GPU. Other formats hold one Arrow record batch.
    """

    def __init__(self, arrays: dict[str, np.ndarray] | None = None,
                 batch: pa.RecordBatch | None = None) -> None:
        self.arrays = None if arrays is None else {
            k: np.ascontiguousarray(v) for k, v in arrays.items()}
        self.batch = batch
        self._helper: ThreadPoolExecutor | None = None

    def gather(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """`array[positions]` for every column, large gathers split over two threads.

        A random gather waits on memory, row by row; a second thread keeps twice
        as many reads in flight (~1.4x on 2 cores); both release the GIL. The
        second thread takes its half of every column in one hand-off: waking a
        thread costs tens of microseconds on a busy host, and one hand-off per
        column made the epoch ~25% slower, measured.
        """
        assert self.arrays is not None
        arrays = self.arrays
        half = len(positions) // 2
        if half < GATHER_SPLIT_ROWS:
            return gather(arrays, positions)
        positions = np.ascontiguousarray(positions, dtype=np.int64)
        out = empty_rows(arrays, len(positions))
        columns = list(arrays.values())

        def take(lo: int, hi: int) -> None:
            take_into(columns, positions[lo:hi], [o[lo:hi] for o in out.values()])

        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="loaderkit-gather")
        second = self._helper.submit(take, half, len(positions))
        take(0, half)
        second.result()
        return out

    def chunk(self, positions: np.ndarray, fmt: BatchFormat, batch_size: int) -> Chunk:
        """The rows `positions` as a chunk: one gather for the whole chunk (off the
        consumer's thread with 0 workers: the gather releases the GIL)."""
        if self.arrays is not None and fmt.from_columns is not None:
            return Chunk(fmt.from_columns(self.gather(positions)), fmt, batch_size)
        assert self.batch is not None
        return Chunk(self.batch.take(pa.array(positions)), ARROW, batch_size, deliver=fmt)


def _one_batch(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One contiguous record batch (a copy only when there are several)."""
    if len(batches) == 1:
        return batches[0]
    combined = pa.Table.from_batches(batches).combine_chunks().to_batches()
    return combined[0] if combined else batches[0].slice(0, 0)


def _fill(parts: Iterator[pa.Table], rows: int, fmt: BatchFormat) -> dict[str, np.ndarray] | None:
    """`parts` (consecutive tables, `rows` in all) as one array per column of a gathering
    `fmt`, filled piece by piece: one chunk-sized buffer, never two.

    None when there are no rows to learn the column shapes from.
    """
    assert fmt.columns is not None
    bufs: dict[str, np.ndarray] | None = None
    at = 0
    for part in parts:
        for b in part.to_batches():
            if not b.num_rows:
                continue
            arrays = fmt.columns(fmt.convert(b))
            if bufs is None:
                bufs = empty_rows(arrays, rows)
            for k, v in arrays.items():
                bufs[k][at : at + len(v)] = v
            at += b.num_rows
    if bufs is None:
        return None
    assert at == rows, f"read {at} rows of {rows}"
    return bufs


class Chunk:
    """A chunk's rows held in `fmt`; iterating yields its finished `batch_size` batches.

    Without `order` a batch is a slice (a view); with it, batch i is the rows
    `order[i*bs:(i+1)*bs]`, gathered when it is reached. `deliver`: the chunk is
    held as Arrow and each batch is converted to that format on the way out.
    Picklable, so a worker returns it whole.
    """

    def __init__(
        self,
        data: Any,
        fmt: BatchFormat,
        batch_size: int,
        order: np.ndarray | None = None,
        deliver: BatchFormat | None = None,
    ) -> None:
        self.data, self.fmt, self.batch_size = data, fmt, batch_size
        self.order, self.deliver = order, deliver
        self.rows = len(order) if order is not None else fmt.rows(data)

    def __len__(self) -> int:
        return -(-self.rows // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        fmt = self.fmt
        for a in range(0, self.rows, self.batch_size):
            b = min(a + self.batch_size, self.rows)
            if self.order is None:
                batch = fmt.slice(self.data, a, b)
            else:
                batch = fmt.gather(self.data, self.order[a:b])
            yield fmt.finish(batch) if self.deliver is None else self.deliver.deliver(batch)
        # Consumed: let the chunk's buffer go now, not when the caller's loop
        # variable moves on (by then the next two chunks are in memory too).
        self.data = self.order = None
        self.rows = 0

    def pin_memory(self) -> list[Any]:
        """DataLoader's pin-memory thread: the batches, pinned."""
        from torch.utils.data._utils.pin_memory import pin_memory

        return [pin_memory(b) for b in self]


class ChunkDataset(torch.utils.data.Dataset):
    """Map-style dataset whose "indices" are chunk tasks; item = list of batches."""

    def __init__(
        self,
        read: ReadSpec,
        batch_size: int,
        cache_runs: tuple[ScanRun, ...] | None = None,
        cache_mb: int | None = None,
    ) -> None:
        self.read = read
        self.batch_size = batch_size
        self.cache_runs = cache_runs
        self.cache_mb = cache_mb if cache_mb is not None else DEFAULT_CACHE_MB
        self._reader: Reader | None = None
        self._transform: Callable[[Any], Any] | None = None
        self._cache: _Cache | None = None

    @property
    def format(self) -> BatchFormat:
        return batch_format(self.read.format)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_reader=None, _transform=None, _cache=None)
        return state

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = open_reader(self.read.source)
        return self._reader

    def use_reader(self, reader: Reader) -> None:
        """Reuse the main process's open source for in-process reading (0 workers)."""
        self._reader = reader

    def probe(self) -> str:
        """Open the source and read one row, as a worker would (the build's spawn probe)."""
        if self.read.transform is not None:
            import_attr(self.read.transform)
        rows = self.reader.head(self.read.columns, self.read.filter).num_rows
        return f"read {rows} row(s) of version {self.read.source.version}"

    def __getitem__(self, task: Task) -> Chunk | list[Any]:
        """The task's batches: a `Chunk` (iterable of batches), or a list with a transform.

        A `Chunk` holds the whole chunk converted once; its batches are views
        (or, for shuffled rows, small gathers) made as the consumer iterates, so
        a worker ships one tensor per column per chunk, not one per batch.
        """
        fmt = self.format
        out: Chunk | list[Any]
        if isinstance(task, StandbyTask):
            return []
        if isinstance(task, CacheTask):
            out = self._load_cache().chunk(task.positions, fmt, self.batch_size)
        elif isinstance(task, ScanTask):
            batches = self._scan(task)
            in_worker = torch.utils.data.get_worker_info() is not None
            if in_worker and self.read.transform is None and batches:
                # In a worker: one converted chunk crosses to the main process.
                out = Chunk(fmt.convert(_one_batch(batches)), fmt, self.batch_size)
            else:  # in-process: each scanner batch converts zero-copy
                out = [fmt.deliver(b) for b in batches]
        else:
            out = self._take(task)
        return self._transformed(out)

    def stream(self, runs: Iterable[ScanRun]) -> Iterator[Any]:
        """The batches of `runs`, read as they are consumed: a scan order, 0 workers.

        One scanner per run (a run spans whole fragments) reads ahead on Lance's
        own threads, as pylance's LanceDataset does; a scanner per chunk task
        paid its start-up ~30 times an epoch here.
        """
        fmt, batches = self.format, rebatch(self._scanned(runs), self.batch_size)
        if self.read.transform is None:
            yield from (fmt.deliver(batch) for batch in batches)
            return
        for batch in batches:
            yield from self._transformed([fmt.deliver(batch)])

    def _transformed(self, out: Chunk | list[Any]) -> Chunk | list[Any]:
        reference = self.read.transform
        if reference is None:
            return out
        if self._transform is None:
            self._transform = import_attr(reference)
        return [call_user(TransformError, reference, self._transform, b) for b in out]

    def _scan(self, task: ScanTask) -> list[pa.RecordBatch]:
        return list(rebatch(self._scanned(task.runs), self.batch_size))

    def _scanned(self, runs: Iterable[ScanRun]) -> Iterator[pa.RecordBatch]:
        cols, filt = self.read.columns, self.read.filter
        readahead = self.read.batch_readahead or SCAN_READAHEAD
        rows = 0
        for run in runs:
            # A run that starts mid-batch (the last run ended short) first reads just
            # the rows that complete that batch: the rest of it is then read in whole
            # batches, and rebatch copies one batch, not every batch after it.
            head = -rows % self.batch_size
            parts = [run]
            if 0 < head < run.limit:
                parts = [dataclasses.replace(run, limit=head),
                         dataclasses.replace(run, offset=run.offset + head,
                                             limit=run.limit - head)]
            for part in parts:
                for batch in self.reader.scan(part, cols, filt, self.batch_size, readahead):
                    rows += batch.num_rows
                    yield batch

    def _take(self, task: TakeTask) -> Chunk:
        """One sorted, duplicate-free read, converted as a whole, gathered per batch.

        The chunk is never reordered as a whole: each batch is a gather of its
        slice of the delivery order, so the only full-chunk buffer is the read.
        """
        fmt, ids = self.format, task.ids
        if len(ids) == 0:
            return Chunk([], batch_format("python"), self.batch_size)
        uniq, inverse = np.unique(ids, return_inverse=True)
        order = None
        if len(uniq) != len(ids) or np.any(ids[1:] < ids[:-1]):
            order = inverse.astype(np.int64, copy=False)
        take_parts = getattr(self.reader, "take_parts", None)
        if fmt.from_columns is not None and take_parts is not None:
            # Each piece (a range read) is converted and copied into one buffer per
            # column as it arrives: one chunk-sized buffer, never two.
            filled = _fill(take_parts(uniq, self.read.columns), len(uniq), fmt)
            if filled is not None:
                return Chunk(fmt.from_columns(filled), fmt, self.batch_size, order)
        table = self.reader.take(uniq, self.read.columns)
        data = _one_batch(table.to_batches())
        if order is None or fmt.gathers:
            return Chunk(fmt.convert(data), fmt, self.batch_size, order)
        return Chunk(data, ARROW, self.batch_size, order, deliver=fmt)

    def _load_cache(self) -> _Cache:
        if self._cache is not None:
            return self._cache
        assert self.cache_runs is not None, "cache tasks need cache_runs"
        budget = self.cache_mb * 1024 * 1024
        runs = self.cache_runs

        def scanned() -> Iterator[pa.RecordBatch]:
            held = 0
            for run in runs:
                for b in self.reader.scan(run, self.read.columns, self.read.filter, 65536, None):
                    held += b.nbytes
                    if held > budget:
                        raise CacheBudgetError(
                            f"shuffle mode 'cache' needs more than cache_mb={self.cache_mb} MB "
                            "for the selected columns; raise sampler.cache_mb, select fewer "
                            "columns, or use mode 'block'"
                        )
                    yield b

        fmt = self.format
        if fmt.gathers:
            # Filled batch by batch into one array per column: ~1x the data at
            # peak, where holding the batches, combining and converting took ~3x.
            rows = sum(run.limit for run in runs)
            parts = (pa.Table.from_batches([b]) for b in scanned())
            arrays = _fill(parts, rows, fmt)
            if arrays is not None:
                self._cache = _Cache(arrays=arrays)
                return self._cache
        batches = list(scanned())
        schema = self.reader.schema(self.read.columns)
        table = pa.Table.from_batches(batches, schema=batches[0].schema if batches else schema)
        combined = table.combine_chunks().to_batches()
        batch = combined[0] if combined else pa.RecordBatch.from_pylist([], schema=table.schema)
        self._cache = _Cache(batch=batch)
        return self._cache
