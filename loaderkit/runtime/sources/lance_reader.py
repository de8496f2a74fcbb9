"""Reading a Lance dataset (directly, or behind a local LanceDB table): the fast path.

Scans, and takes planned as range reads (read_plan.py) read from the data files
(data_files.py) where they can; engine errors are raised as `SourceError` (failures.py).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import lance
import numpy as np
import pyarrow as pa

from loaderkit.runtime import object_cache, rowids, storage
from loaderkit.runtime.sources.data_files import FileRows
from loaderkit.runtime.sources.failures import reading
from loaderkit.runtime.sources.payloads import ROW_ID, Payloads
from loaderkit.runtime.sources.read_plan import Range, pieces, ranges
from loaderkit.runtime.sources.reader import Columns, asks
from loaderkit.runtime.sources.rowset import lance_universe
from loaderkit.runtime.spec import SourceSpec, SplitSpec
from loaderkit.runtime.universe import ScanRun, Universe


class LanceReader:
    """Fast path: a Lance dataset (directly, or behind a local LanceDB table).

    `source` (when given) names the source in the `SourceError` any read raises.
    """

    def __init__(self, ds: lance.LanceDataset, source: SourceSpec | None = None,
                 reads_in_flight: int | None = None) -> None:
        self.ds = ds
        self.source = source
        self.reads_in_flight = reads_in_flight or storage.reads_in_flight(ds.uri)
        with reading(source):
            self._fragments = {f.fragment_id: f for f in ds.get_fragments()}
        # Per thread (a file reader is not thread-safe), per (fragment, projection):
        # a reader of the fragment's data file, or None where only a scanner reads it right.
        self._files = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    def payloads(self, columns: Columns) -> Payloads:
        """The projection's blob and Hugging Face image columns (delivered as bytes)."""
        return Payloads.of(self.ds.schema, columns)

    def schema(self, columns: Columns) -> pa.Schema:
        """The projection's schema as delivered (blob and image columns as bytes)."""
        if columns is None:
            return self.payloads(columns).schema(self.ds.schema)
        with reading(self.source):
            # An empty-limit scan resolves SQL expression columns to their real types.
            projected = self.ds.scanner(columns=columns, limit=0).projected_schema
        return self.payloads(columns).schema(projected)

    def describe_row(self, row_id: int) -> str:
        """A row as a user can find it again: its fragment and offset, by its address."""
        if self.ds.has_stable_row_ids:
            return f"row id {row_id}"
        return (f"fragment {rowids.fragment_of(row_id)}, row {rowids.offset_of(row_id)} "
                f"(row address {row_id})")

    def _names(self, columns: Columns) -> list[str]:
        return list(columns) if columns is not None else list(self.ds.schema.names)

    def _with_payloads(self, payloads: Payloads, scanned: Any, ids: np.ndarray | None,
                       columns: Columns) -> pa.RecordBatch:
        """A scanned batch or table with its blob and image columns as bytes."""
        if ids is None:  # row ids name the blobs to read; images need none
            ids = scanned.column(ROW_ID).to_numpy() if payloads.blobs else np.zeros(0, np.int64)
        table = payloads.deliver(self.ds, scanned, ids, self._names(columns))
        batches = table.combine_chunks().to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)

    def universe(self, filter: str | None, split: SplitSpec | None = None) -> Universe:
        with reading(self.source):
            return lance_universe(self.ds, filter, split)

    def scan(
        self,
        run: ScanRun,
        columns: Columns,
        filter: str | None,
        batch_size: int,
        batch_readahead: int | None,
    ) -> Iterator[pa.RecordBatch]:
        fragments = [self._fragments[fid] for fid in run.fragment_ids]
        payloads = self.payloads(columns)
        # A generator: the engine reads (and fails) while the batches are pulled.
        with reading(self.source):
            scanner = self.ds.scanner(
                columns=payloads.scanned(self.ds.schema, columns) if payloads else columns,
                filter=filter,
                fragments=fragments,
                offset=run.offset,
                limit=run.limit,
                batch_size=batch_size,
                batch_readahead=batch_readahead,
                scan_in_order=True,
                with_row_id=bool(payloads.blobs),
            )
            for batch in scanner.to_batches():
                yield self._with_payloads(payloads, batch, None, columns) if payloads else batch

    def head(self, columns: Columns, filter: str | None) -> pa.Table:
        payloads = self.payloads(columns)
        with reading(self.source):
            if not payloads:
                return self.ds.scanner(columns=columns, filter=filter, limit=1).to_table()
            scanned = self.ds.scanner(columns=payloads.scanned(self.ds.schema, columns),
                                      filter=filter, limit=1, with_row_id=True).to_table()
            return pa.Table.from_batches([self._with_payloads(payloads, scanned, None,
                                                              columns)])

    def checks(self) -> LanceChecks:
        return LanceChecks(self)

    def take(self, ids: np.ndarray, columns: Columns) -> pa.Table:
        return pa.concat_tables(list(self.take_parts(ids, columns)))

    def take_parts(self, ids: np.ndarray, columns: Columns) -> Iterator[pa.Table]:
        """`take`, as consecutive pieces, so a caller can copy them out as they arrive."""
        payloads = self.payloads(columns)
        # A generator: the engine reads (and fails) while the pieces are pulled.
        with reading(self.source):
            if payloads:  # blobs and images: bytes read per row anyway, in one piece
                scanned = self.ds._take_rows(pa.array(ids, type=pa.uint64()),
                                             columns=payloads.scanned(self.ds.schema, columns))
                yield pa.Table.from_batches([self._with_payloads(payloads, scanned, ids,
                                                                 columns)])
                return
            runs = ranges(ids, self._fragments, self.ds.has_stable_row_ids)
            if runs is None:
                # Row ids / addresses: cheaper than offsets (no offset -> fragment search).
                yield self.ds._take_rows(pa.array(ids, type=pa.uint64()), columns=columns)
                return
            # Runs of rows read in pieces (`read_plan.pieces`), `reads_in_flight` at a time (most
            # of a read's cost is fixed overhead or latency, which overlaps).
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.reads_in_flight,
                                                thread_name_prefix="loaderkit-read")
            pending: deque[Future[pa.Table]] = deque()
            try:
                for piece in pieces(runs):
                    pending.append(self._pool.submit(self._read_runs, piece, columns))
                    if len(pending) > self.reads_in_flight:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:  # closed early (an error, or the consumer let go)
                for future in pending:
                    future.cancel()

    def _read_runs(self, runs: list[Range], columns: Columns) -> pa.Table:
        """Runs of one fragment (see `read_plan.pieces`): straight from its data file where it
        can, else through the dataset.

        A dense run is one `read_range` (or one scanner, ~0.7 ms of planning); other
        runs are one `take_rows` over the wanted offsets of the piece, which reads
        only those rows (an exact shuffle's scattered rows: 1.0 GB peak to 0.4, and
        faster; a block shuffle's 128-row blocks: ~1.6x a dataset take's rate).
        """
        file = self._file_rows(runs[0].fragment, columns)
        if runs[0].dense:
            (run,) = runs
            if file is not None:
                table = file.read(run.offset, run.rows)
            else:  # no readahead: one small read (the default made each call 40% slower)
                table = self.ds.scanner(columns=columns, fragments=[run.fragment],
                                        offset=run.offset, limit=run.rows, batch_size=run.rows,
                                        batch_readahead=1, fragment_readahead=1).to_table()
            return table if run.keep is None else table.take(pa.array(run.keep))
        offsets = np.concatenate([run.offsets() for run in runs])
        if file is not None:
            return file.take(offsets)
        addresses = rowids.address(int(runs[0].fragment.fragment_id), offsets)
        return self.ds._take_rows(pa.array(addresses, type=pa.uint64()), columns=columns)

    def _file_rows(self, frag: Any, columns: Columns) -> FileRows | None:
        files: dict[tuple[int, Any], FileRows | None] | None
        files = getattr(self._files, "by_key", None)
        if files is None:
            files = self._files.by_key = {}
        key = (frag.fragment_id, tuple(columns.items()) if columns is not None else None)
        known = files.get(key)
        if key not in files or (known is not None and not known.local
                                and object_cache.has_copy(self.source, frag)):
            files[key] = FileRows.open(self.ds, frag, columns, self.source)
        return files[key]


class LanceChecks:
    """Bind's questions to a Lance dataset, asked of its scanner (which checks a projection
    and a filter lazily: asking for the schema is what raises)."""

    parses_filters = True

    def __init__(self, reader: LanceReader) -> None:
        self.reader, self.ds = reader, reader.ds
        self.schema: pa.Schema | None = reader.ds.schema

    def column_problem(self, name: str, expression: str) -> str | None:
        return asks(lambda: self.ds.scanner(columns={name: expression}, limit=0)
                    .projected_schema)

    def filter_problem(self, text: str) -> str | None:
        return asks(lambda: self.ds.scanner(columns=[], filter=text, limit=0, with_row_id=True)
                    .projected_schema)

    def delivered(self, columns: Columns) -> pa.Schema | None:
        return self.reader.schema(columns)


def as_lance_dataset(obj: Any) -> lance.LanceDataset | None:
    """The Lance dataset behind what `open_source` returned, or None (remote tables)."""
    if isinstance(obj, lance.LanceDataset):
        return obj
    to_lance = getattr(obj, "to_lance", None)
    if to_lance is None:
        return None
    try:
        ds = to_lance()
    except (NotImplementedError, ValueError):  # remote (the first), memory:// (the second)
        return None
    return ds if isinstance(ds, lance.LanceDataset) else None
