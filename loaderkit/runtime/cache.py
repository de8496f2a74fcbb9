"""Shuffle `cache` mode: the selected columns of the whole universe, held in memory.

A gathering format's columns are converted once (so a column the format cannot
hold fails at load, not mid-epoch) and held as C-contiguous numpy arrays: a chunk
is one row gather over every column (`gathering.take_into`). Not
`torch.index_select`: torch's intra-op thread pool collapses (5-20x slower,
measured) when the cores are oversubscribed, the normal state of a host feeding
a GPU. Other formats hold one Arrow record batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from loaderkit.errors import CacheBudgetError
from loaderkit.runtime.chunks import Chunk, HeldChunk, fill
from loaderkit.runtime.formats import ARROW, BatchFormat
from loaderkit.runtime.gathering import empty_rows, gather, take_into
from loaderkit.runtime.sources.reader import Columns, Reader
from loaderkit.runtime.universe import ScanRun

# Used when SamplerSpec.cache_mb is None: a cap, so a typo'd recipe cannot eat the host.
DEFAULT_CACHE_MB = 4096
# Cache gathers of at least twice this many rows are split over two threads.
GATHER_SPLIT_ROWS = 2048
# What a cache loads: the universe's scanner runs, or its row ids (None: nothing yet).
CacheRows = tuple[ScanRun, ...] | np.ndarray | None


def fixed_bytes(schema: pa.Schema, rows: int) -> int:
    """Lower bound of `rows` rows' size from fixed-width types (variable width counts 0)."""
    per_row = 0
    for f in schema:
        t, width = f.type, 1
        while pa.types.is_fixed_size_list(t):
            width *= t.list_size
            t = t.value_type
        with contextlib.suppress(ValueError):  # variable width: checked while loading
            per_row += width * max(1, t.bit_width // 8)
    return per_row * rows


def budget_mb(cache_mb: int | None) -> int:
    """`sampler.cache_mb`, or the default when the recipe leaves it unset."""
    return cache_mb if cache_mb is not None else DEFAULT_CACHE_MB


def over_budget(cache_mb: int | None, need: int | None = None) -> CacheBudgetError:
    """The one refusal of a cache larger than its budget, estimated (`need`) or found."""
    budget = budget_mb(cache_mb)
    needs = f"at least {need / 2**20:.0f} MB" if need is not None else f"more than {budget} MB"
    return CacheBudgetError(
        f"shuffle mode 'cache' needs {needs} for the selected columns but cache_mb is "
        f"{budget}; raise sampler.cache_mb, select fewer columns, or use mode 'block'")


def check_budget(schema: pa.Schema, rows: int, cache_mb: int | None) -> None:
    """Refuse, before any read, a cache whose fixed-width columns alone exceed the budget."""
    need = fixed_bytes(schema, rows)
    if need > budget_mb(cache_mb) * 2**20:
        raise over_budget(cache_mb, need)


class ShuffleCache:
    """The universe's rows in memory: arrays for a gathering format, else Arrow."""

    def __init__(self, arrays: dict[str, np.ndarray] | None = None,
                 batch: pa.RecordBatch | None = None) -> None:
        self.arrays = None if arrays is None else {
            k: np.ascontiguousarray(v) for k, v in arrays.items()}
        self.batch = batch
        self._helper: ThreadPoolExecutor | None = None

    @classmethod
    def load(cls, reader: Reader, rows: CacheRows, columns: Columns,
             filter: str | None, fmt: BatchFormat, cache_mb: int | None) -> ShuffleCache:
        """The universe's rows, in position order: `rows` are its scanner runs, or (where
        a scanner would not read exactly them: a split, a mixture) its row ids."""
        budget = budget_mb(cache_mb) * 2**20
        if isinstance(rows, np.ndarray):
            return cls._by_ids(reader, rows, columns, fmt, budget, cache_mb)

        def scanned() -> Iterator[pa.RecordBatch]:
            held = 0
            for run in rows or ():
                for b in reader.scan(run, columns, filter, 65536, None):
                    held += b.nbytes
                    if held > budget:
                        raise over_budget(cache_mb)
                    yield b

        if fmt.gathers:
            # Filled batch by batch into one array per column: ~1x the data at
            # peak, where holding the batches, combining and converting took ~3x.
            total = sum(run.limit for run in rows or ())
            arrays = fill((pa.Table.from_batches([b]) for b in scanned()), total, fmt)
            if arrays is not None:
                return cls(arrays=arrays)
        batches = list(scanned())
        schema = batches[0].schema if batches else reader.schema(columns)
        combined = pa.Table.from_batches(batches, schema=schema).combine_chunks().to_batches()
        return cls(batch=combined[0] if combined else pa.RecordBatch.from_pylist([],
                                                                                 schema=schema))

    @classmethod
    def _by_ids(cls, reader: Reader, ids: np.ndarray, columns: Columns,
                fmt: BatchFormat, budget: int, cache_mb: int | None) -> ShuffleCache:
        uniq, inverse = np.unique(ids, return_inverse=True)
        parts, held = [], 0
        for part in reader.take_parts(uniq, columns):
            held += part.nbytes
            if held > budget:
                raise over_budget(cache_mb)
            parts.append(part)
        if fmt.gathers:
            arrays = fill(parts, len(uniq), fmt)
            if arrays is not None:
                return cls(arrays=gather(arrays, inverse.astype(np.int64)))
        table = pa.concat_tables(parts) if parts else reader.schema(columns).empty_table()
        ordered = table.take(pa.array(inverse)).combine_chunks().to_batches()
        return cls(batch=ordered[0] if ordered else pa.RecordBatch.from_pylist(
            [], schema=table.schema))

    def gather(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """`array[positions]` for every column, large gathers split over two threads.

        A random gather waits on memory, row by row; a second thread keeps twice
        as many reads in flight (~1.4x on 2 cores); both release the GIL. The
        second thread takes its half of every column in one hand-off: waking a
        thread costs tens of microseconds on a busy host, and one hand-off per
        column made the epoch ~25% slower, measured.
        """
        if self.arrays is None:
            raise TypeError("this cache holds Arrow, not arrays")
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
            return HeldChunk(fmt.from_columns(self.gather(positions)), fmt, batch_size)
        if self.batch is None:
            raise TypeError("an empty cache")
        return HeldChunk(self.batch.take(pa.array(positions)), ARROW, batch_size, deliver=fmt)
