"""What runs in a worker: one task in, one chunk of finished batches out.

The dataset holds only picklable specs. The source, the transform and the
shuffle cache are opened lazily, once per process, and dropped on pickling, so
a spawned worker opens its own handle (and reads its own secrets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.data

from loaderkit.errors import TransformError, UserCodeError
from loaderkit.references import call_user, import_attr, returned_wrong
from loaderkit.runtime.cache import CacheRows, ShuffleCache
from loaderkit.runtime.chunks import Chunk, HeldChunk, ReadyChunk, fill, one_batch, rebatch
from loaderkit.runtime.decoding import decode_batch, in_batch
from loaderkit.runtime.formats import ARROW, BatchFormat, batch_format
from loaderkit.runtime.sources import open_reader
from loaderkit.runtime.sources.failures import redacted_warnings, redactor, user_code_error
from loaderkit.runtime.sources.reader import Reader
from loaderkit.runtime.spec import ReadSpec
from loaderkit.runtime.tasks import CacheTask, StandbyTask, TakeTask, Task
from loaderkit.runtime.tokenizing import tokenize_batch
from loaderkit.runtime.universe import ScanRun
from loaderkit.vocabulary import Redactor

# Scanner batches read ahead when the recipe leaves `batch_readahead` unset: pylance's
# LanceDataset default. Lance's own default scanned 1M rows 25% slower here.
SCAN_READAHEAD = 16


class ChunkDataset(torch.utils.data.Dataset):
    """Map-style dataset whose "indices" are tasks; an item is a `Chunk` of batches."""

    def __init__(
        self,
        read: ReadSpec,
        batch_size: int,
        cache_rows: CacheRows = None,
        cache_mb: int | None = None,
    ) -> None:
        self.read = read
        self.batch_size = batch_size
        self.cache_rows = cache_rows
        self.cache_mb = cache_mb
        self._reader: Reader | None = None
        self._transform: Callable[[Any], Any] | None = None
        self._cache: ShuffleCache | None = None
        self._redact: Redactor | None = None  # built in each process, from its environment

    @property
    def format(self) -> BatchFormat:
        return batch_format(self.read.format)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_reader=None, _transform=None, _cache=None, _redact=None)
        return state

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = open_reader(self.read.source, self.read.reads_in_flight)
        return self._reader

    def use_reader(self, reader: Reader) -> None:
        """Reuse the main process's open source for in-process reading."""
        self._reader = reader

    def probe(self) -> str:
        """Open the source and read one row, as a worker would (the build's spawn probe)."""
        if self.read.transform is not None:
            import_attr(self.read.transform)
        rows = self.reader.head(self.read.engine_columns, self.read.engine_filter).num_rows
        return f"read {rows} row(s) of version {self.read.source.version}"

    def __getitem__(self, task: Task) -> Chunk:
        """The task's batches, decoded and transformed when the recipe says so.

        A chunk read as a whole is converted once; its batches are views (or, for
        shuffled rows, small gathers) made as the consumer iterates, so a worker
        ships one buffer per column per chunk, not one per batch.
        """
        ids = task.ids if isinstance(task, TakeTask) else None
        return self._finished(self._read(task), ids)

    def _read(self, task: Task) -> Chunk:
        fmt = self.format
        if isinstance(task, StandbyTask):
            return ReadyChunk([])
        if isinstance(task, CacheTask):
            return self._load_cache().chunk(task.positions, fmt, self.batch_size)
        if isinstance(task, TakeTask):
            return self._take(task)
        batches = list(rebatch(self._scanned(task.runs), self.batch_size))
        in_worker = torch.utils.data.get_worker_info() is not None
        if in_worker and self.read.transform is None and batches:
            # In a worker: one converted chunk crosses to the main process.
            return HeldChunk(fmt.convert(one_batch(batches)), fmt, self.batch_size)
        return ReadyChunk([fmt.deliver(b) for b in batches])  # each converts zero-copy

    def stream(self, runs: Iterable[ScanRun]) -> Iterator[Any]:
        """The batches of `runs`, read as they are consumed: a scan order, 0 workers.

        One scanner per run (a run spans whole fragments) reads ahead on Lance's
        own threads, as pylance's LanceDataset does; a scanner per chunk task
        paid its start-up ~30 times an epoch here.
        """
        fmt = self.format
        for batch in rebatch(self._scanned(runs), self.batch_size):
            yield from self._finished(ReadyChunk([fmt.deliver(batch)]), None)

    def _finished(self, chunk: Chunk, ids: np.ndarray | None) -> Chunk:
        """Each batch decoded (`decode:`), then transformed (`transform`), in that order.

        `ids`: the chunk's row ids in delivery order, when known, so that a corrupt
        image is reported by its row id. What the transform raises quotes no value of the
        source's `${env:...}` settings (a transform may read them from the environment).
        """
        try:
            return self._transformed(chunk, ids)
        except UserCodeError as exc:
            clean = user_code_error(exc, self.read.source)
            raise clean from clean.__cause__

    def _transformed(self, chunk: Chunk, ids: np.ndarray | None) -> Chunk:
        reference, decode, tokenize = self.read.transform, self.read.decode, self.read.tokenize
        if reference is None and not decode and not tokenize:
            return chunk
        if reference is not None and self._transform is None:
            self._transform = import_attr(reference, TransformError)
        transform = self._transform
        out = []
        for index, batch in enumerate(chunk):
            if decode:
                batch = decode_batch(batch, decode, self._row_names(ids, index))
            # --- issue 25: `tokenize:` between decode and transform (one stage of #24's table
            if tokenize:  # at the merge) ---
                batch = tokenize_batch(batch, tokenize, self.read.format)
            if reference is not None and transform is not None:
                with redacted_warnings(self._redactor()):
                    batch = call_user(TransformError, reference, transform, batch)
                if batch is None:  # a transform that edits in place and forgets to return
                    raise returned_wrong(TransformError, reference, batch, "a batch",
                                         hint="end it with `return batch`")
            out.append(batch)
        return ReadyChunk(out)

    def _redactor(self) -> Redactor:
        if self._redact is None:
            self._redact = redactor(self.read.source)
        return self._redact

    def _row_names(self, ids: np.ndarray | None, index: int) -> Callable[[int], str]:
        """How row k of batch `index` of a chunk is named in an error (its row id, if known)."""
        if ids is None:
            return in_batch
        start = index * self.batch_size
        return lambda k: str(self.reader.describe_row(int(ids[start + k])))

    def _scanned(self, runs: Iterable[ScanRun]) -> Iterator[Any]:
        cols, filt = self.read.engine_columns, self.read.engine_filter
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
            return ReadyChunk([])
        uniq, inverse = np.unique(ids, return_inverse=True)
        order = None
        if len(uniq) != len(ids) or np.any(ids[1:] < ids[:-1]):
            order = inverse.astype(np.int64, copy=False)
        if fmt.from_columns is not None:
            # Each piece (a range read) is converted and copied into one buffer per
            # column as it arrives: one chunk-sized buffer, never two.
            filled = fill(self.reader.take_parts(uniq, self.read.engine_columns), len(uniq), fmt)
            if filled is not None:
                return HeldChunk(fmt.from_columns(filled), fmt, self.batch_size, order)
        data = one_batch(self.reader.take(uniq, self.read.engine_columns).to_batches())
        if order is None or fmt.gathers:
            return HeldChunk(fmt.convert(data), fmt, self.batch_size, order)
        return HeldChunk(data, ARROW, self.batch_size, order, deliver=fmt)

    def _load_cache(self) -> ShuffleCache:
        if self._cache is None:
            if self.cache_rows is None:
                raise TypeError("cache tasks need the cache's rows")
            self._cache = ShuffleCache.load(self.reader, self.cache_rows, self.read.engine_columns,
                                            self.read.engine_filter, self.format, self.cache_mb)
        return self._cache
