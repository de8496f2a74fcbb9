"""What runs in a worker: one chunk task in, a list of finished batches out.

The dataset holds only picklable specs. The source, the transform and the
shuffle cache are opened lazily, once per process, and dropped on pickling, so
a spawned worker opens its own handle (and reads its own secrets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.utils.data

from loaderkit.runtime.errors import CacheBudgetError
from loaderkit.runtime.formats import convert
from loaderkit.runtime.plans import CacheTask, ScanRun, ScanTask, TakeTask, Task
from loaderkit.runtime.sources import Reader, import_attr, open_reader
from loaderkit.runtime.spec import Format, ReadSpec

# Used when SamplerSpec.cache_mb is None: a cap, so a typo'd recipe cannot eat the host.
DEFAULT_CACHE_MB = 4096


def identity_collate(batches: list[Any]) -> list[Any]:
    """The task already returns finished batches; module-level so spawn can pickle it."""
    return batches


def rebatch(batches: list[pa.RecordBatch], batch_size: int) -> list[pa.RecordBatch]:
    """Exactly `batch_size` rows per batch (the last may be shorter).

    Scanners may cut short at fragment boundaries; only then do we pay a copy.
    """
    batches = [b for b in batches if b.num_rows]
    if all(b.num_rows == batch_size for b in batches[:-1]) and (
        not batches or batches[-1].num_rows <= batch_size
    ):
        return batches
    table = pa.Table.from_batches(batches).combine_chunks()
    return table.to_batches(max_chunksize=batch_size)


class _Cache:
    """Shuffle `cache` mode: the selected columns of the whole universe, in memory.

    Tensor-like formats are converted once (so a string column fails at load,
    not mid-epoch) and held as numpy arrays: a batch is one `np.take` per column.
    `np.take` rather than `torch.index_select`, because torch's intra-op thread
    pool collapses (5-20x slower, measured) when the cores are oversubscribed,
    which is the normal state of a host feeding a GPU.
    """

    def __init__(self, batch: pa.RecordBatch, fmt: Format) -> None:
        self.batch = batch
        self.fmt = fmt
        self.base: Any = None
        if fmt == "torch_col":
            self.base = convert(batch, fmt).numpy()
        elif fmt == "torch":
            self.base = {k: t.numpy() for k, t in convert(batch, fmt).items()}
        elif fmt == "numpy":
            self.base = convert(batch, fmt)

    def rows(self, positions: np.ndarray) -> Any:
        if self.base is None:
            return convert(self.batch.take(pa.array(positions)), self.fmt)
        if isinstance(self.base, np.ndarray):
            return torch.from_numpy(np.take(self.base, positions, axis=0))
        picked = {k: np.take(v, positions, axis=0) for k, v in self.base.items()}
        if self.fmt == "numpy":
            return picked
        return {k: torch.from_numpy(v) for k, v in picked.items()}


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

    def __getitem__(self, task: Task) -> list[Any]:
        if isinstance(task, CacheTask):
            cache = self._load_cache()
            out = [
                cache.rows(task.positions[i : i + self.batch_size])
                for i in range(0, len(task.positions), self.batch_size)
            ]
        else:
            out = [convert(b, self.read.format) for b in self._read_arrow(task)]
        if self.read.transform is None:
            return out
        if self._transform is None:
            self._transform = import_attr(self.read.transform)
        return [self._transform(b) for b in out]

    def _read_arrow(self, task: ScanTask | TakeTask) -> list[pa.RecordBatch]:
        cols, filt = self.read.columns, self.read.filter
        if isinstance(task, ScanTask):
            batches: list[pa.RecordBatch] = []
            for run in task.runs:
                batches += self.reader.scan(
                    run, cols, filt, self.batch_size, self.read.batch_readahead
                )
            return rebatch(batches, self.batch_size)
        ids = task.ids
        if len(ids) == 0:
            return []
        # One sorted, duplicate-free take (sequential-ish I/O), then one in-memory
        # gather back to delivery order; skipped when the ids are already sorted.
        uniq, inverse = np.unique(ids, return_inverse=True)
        table = self.reader.take(uniq, cols)
        if len(uniq) != len(ids) or np.any(ids[1:] < ids[:-1]):
            table = table.take(pa.array(inverse))
        return table.combine_chunks().to_batches(max_chunksize=self.batch_size)

    def _load_cache(self) -> _Cache:
        if self._cache is not None:
            return self._cache
        assert self.cache_runs is not None, "cache tasks need cache_runs"
        budget = self.cache_mb * 1024 * 1024
        batches: list[pa.RecordBatch] = []
        held = 0
        for run in self.cache_runs:
            for b in self.reader.scan(run, self.read.columns, self.read.filter, 65536, None):
                held += b.nbytes
                if held > budget:
                    raise CacheBudgetError(
                        f"shuffle mode 'cache' needs more than cache_mb={self.cache_mb} MB "
                        "for the selected columns; raise sampler.cache_mb, select fewer "
                        "columns, or use mode 'block'"
                    )
                batches.append(b)
        schema = self.reader.schema(self.read.columns)
        table = pa.Table.from_batches(batches, schema=batches[0].schema if batches else schema)
        combined = table.combine_chunks().to_batches()
        batch = combined[0] if combined else pa.RecordBatch.from_pylist([], schema=table.schema)
        self._cache = _Cache(batch, self.read.format)
        return self._cache
