"""Reading rows from an open source: every scan and take through Lance/LanceDB (the bytes
of blob columns come through payloads.py).

`LanceReader` is the fast path, over a Lance dataset (directly, or behind a local
LanceDB table); `TableReader` reads any table by row offsets (memory:// and
remote tables). Both raise engine errors as `SourceError` (failures.py).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import lance
import lance.file
import numpy as np
import pyarrow as pa

from loaderkit.errors import SourceError
from loaderkit.runtime import object_cache, splits, storage
from loaderkit.runtime.sources.failures import reading
from loaderkit.runtime.sources.payloads import ROW_ID, Payloads
from loaderkit.runtime.spec import SourceSpec, SplitSpec
from loaderkit.runtime.universe import Bitmap, ScanRun, Universe
from loaderkit.vocabulary import RANDOM_SPLIT

Columns = dict[str, str] | None


class Reader(Protocol):
    """What the planner and the workers need from a source."""

    def schema(self, columns: Columns) -> pa.Schema: ...

    def universe(self, filter: str | None, split: SplitSpec | None = None) -> Universe: ...

    def scan(
        self,
        run: ScanRun,
        columns: Columns,
        filter: str | None,
        batch_size: int,
        batch_readahead: int | None,
    ) -> Iterator[pa.RecordBatch]: ...

    def head(self, columns: Columns, filter: str | None) -> pa.Table:
        """At most one row: proves the source opens and the projection reads."""
        ...

    def payloads(self, columns: Columns) -> Payloads:
        """The projection's columns delivered as bytes from elsewhere (blobs, images)."""
        ...

    def describe_row(self, row_id: int) -> str:
        """A row id (as `Universe.ids` gives it) as a user can find the row again."""
        ...

    def take(self, ids: np.ndarray, columns: Columns) -> pa.Table:
        """Rows for *sorted, unique* `ids` (as produced by `Universe.ids`), in that order."""
        ...


# Mean run length (rows) from which `LanceReader.take` reads a fragment's data file
# (ranges and per-fragment takes) instead of one dataset take: a dataset take of
# 128-row runs read ~1.0M rows/s here, per-fragment takes ~1.6M, in 3 threads.
MIN_RANGE_ROWS = 32
# A dense run at least this long is one `read_range` (~0.5 ms a call, whatever its
# length up to ~1,000 rows); shorter ones go into a take of their fragment's rows.
RANGE_READ_ROWS = 512
# Wanted rows of one fragment's sparse runs read by one take_rows: big enough that
# a call's fixed cost is small, small enough that a chunk's pieces are read in
# parallel and copied out as they arrive.
TAKE_PIECE_ROWS = 16384
# Rows between two wanted rows that a range read may read and drop rather than split.
RANGE_GAP = 64


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
        self._split_counts = np.zeros(0, dtype=np.int64)

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
        return f"fragment {row_id >> 32}, row {row_id & 0xFFFFFFFF} (row address {row_id})"

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
            return self._universe(filter, split)

    def _universe(self, filter: str | None, split: SplitSpec | None) -> Universe:
        frags = self.ds.get_fragments()
        frag_ids = np.array([f.fragment_id for f in frags], dtype=np.int64)
        physical = np.array([f.metadata.physical_rows for f in frags], dtype=np.int64)
        deletions = any(f.metadata.deletion_file is not None for f in frags)
        if filter is None and split is None and not deletions and not self.ds.has_stable_row_ids:
            # Addresses follow from the layout: no per-row array, so a billion-row
            # full scan plans in O(fragments) memory.
            return Universe(frag_ids, physical, None)
        if self.ds.has_stable_row_ids:
            return self._universe_by_ids(frag_ids, filter, split)
        return self._universe_by_bitmaps(frag_ids, physical, filter, split)

    def _kept_rows(self, filter: str | None, split: SplitSpec | None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row addresses, whether each is kept) batch by batch in dataset order: the rows the
        filter selects and, with a split, whether each is in the chosen split. One scan, of
        the split's column alone (or none), in bounded memory."""
        by = [split.by] if split is not None and split.by != RANDOM_SPLIT else []
        scanner = self.ds.scanner(columns=by, filter=filter, with_row_address=True,
                                  batch_size=1 << 17, scan_in_order=True)
        seen = 0
        for batch in scanner.to_batches():
            addresses = batch.column("_rowaddr").to_numpy().astype(np.int64)
            keep = np.ones(len(addresses), dtype=bool)
            if split is not None:
                values = batch.column(split.by) if by else np.arange(seen, seen + len(keep))
                assigned = splits.assign(values, split)
                self._split_counts += np.bincount(assigned[assigned >= 0].astype(np.int64),
                                                  minlength=len(split.fractions))
                if split.split is not None:
                    keep = assigned == split.index
            seen += len(keep)
            yield addresses, keep

    def _universe_by_bitmaps(self, frag_ids: np.ndarray, physical: np.ndarray,
                             filter: str | None, split: SplitSpec | None) -> Universe:
        """Each fragment's kept rows as a bitmap (or all of them), built as the scan goes:
        at most one fragment's flags are held at a time."""
        index_of = {int(f): i for i, f in enumerate(frag_ids)}
        kept: list[Bitmap | None] = [None] * len(frag_ids)
        rows = np.zeros(len(frag_ids), dtype=np.int64)
        self._split_counts = np.zeros(len(split.fractions) if split else 0, dtype=np.int64)
        current, flags = -1, np.zeros(0, dtype=bool)

        def close() -> None:
            if current >= 0:
                count = int(flags.sum())
                rows[current] = count
                kept[current] = None if count == len(flags) else Bitmap(flags)

        for addresses, keep in self._kept_rows(filter, split):
            fragments = addresses >> 32
            for fragment in np.unique(fragments):
                here = fragments == fragment
                index = index_of[int(fragment)]
                if index != current:
                    close()
                    current, flags = index, np.zeros(int(physical[index]), dtype=bool)
                flags[addresses[here] & 0xFFFFFFFF] = keep[here]
        close()
        # A fragment the scan never reached keeps no row (a bitmap of none).
        for index in range(len(frag_ids)):
            if rows[index] == 0 and kept[index] is None:
                kept[index] = Bitmap(np.zeros(0, dtype=bool))
        return self._universe_of(frag_ids, rows, None, tuple(kept), split)

    def _universe_of(self, frag_ids: np.ndarray, rows: np.ndarray, row_ids: np.ndarray | None,
                     kept: tuple[Bitmap | None, ...] | None, split: SplitSpec | None) -> Universe:
        split_rows: tuple[tuple[str, int], ...] = ()
        if split is not None:
            split_rows = tuple((name, int(n)) for (name, _), n
                               in zip(split.fractions, self._split_counts, strict=True))
        chosen = split is not None and split.split is not None
        return Universe(frag_ids, rows, row_ids, scannable=not chosen, split_rows=split_rows,
                        kept=kept)

    def _universe_by_ids(self, frag_ids: np.ndarray, filter: str | None,
                         split: SplitSpec | None) -> Universe:
        """With stable row ids, rows are read by id, not address: the ids are kept, 8 bytes
        a row (the one universe that grows with the data)."""
        self._split_counts = np.zeros(len(split.fractions) if split else 0, dtype=np.int64)
        by = [split.by] if split is not None and split.by != RANDOM_SPLIT else []
        tbl = self.ds.to_table(columns=by, with_row_id=True, with_row_address=True,
                               filter=filter)
        if split is not None:
            assigned = splits.assign(tbl[split.by] if by else np.arange(tbl.num_rows), split)
            self._split_counts += np.bincount(assigned[assigned >= 0].astype(np.int64),
                                              minlength=len(split.fractions))
            if split.split is not None:
                wanted = split.index
                tbl = tbl.filter(pa.array(assigned == wanted))
        row_ids = tbl["_rowid"].to_numpy().astype(np.int64)
        frag_of_row = (tbl["_rowaddr"].to_numpy() >> np.uint64(32)).astype(np.int64)
        # Rows arrive in scan order (fragment by fragment); map fragment ids to
        # dataset-order indices and keep that order stable, defensively.
        index_of = np.full(int(max(frag_ids.max(initial=0), frag_of_row.max(initial=0))) + 1, -1)
        index_of[frag_ids] = np.arange(len(frag_ids))
        row_frag_index = index_of[frag_of_row]
        if row_frag_index.size and np.any(np.diff(row_frag_index) < 0):
            order = np.argsort(row_frag_index, kind="stable")
            row_ids, row_frag_index = row_ids[order], row_frag_index[order]
        rows = np.bincount(row_frag_index, minlength=len(frag_ids)).astype(np.int64)
        return self._universe_of(frag_ids, rows, row_ids, None, split)

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
            runs = self._ranges(ids)
            if runs is None:
                # Row ids / addresses: cheaper than offsets (no offset -> fragment search).
                yield self.ds._take_rows(pa.array(ids, type=pa.uint64()), columns=columns)
                return
            # Runs of rows read in pieces (`_pieces`), `reads_in_flight` at a time (most
            # of a read's cost is fixed overhead or latency, which overlaps).
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.reads_in_flight,
                                                thread_name_prefix="loaderkit-read")
            pending: deque[Future[pa.Table]] = deque()
            try:
                for piece in _pieces(runs):
                    pending.append(self._pool.submit(self._read_runs, piece, columns))
                    if len(pending) > self.reads_in_flight:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:  # closed early (an error, or the consumer let go)
                for future in pending:
                    future.cancel()

    def _read_runs(self, runs: list[_Range], columns: Columns) -> pa.Table:
        """Runs of one fragment (see `_pieces`): straight from its data file where it
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
        addresses = (np.int64(runs[0].fragment.fragment_id) << 32) | offsets
        return self.ds._take_rows(pa.array(addresses, type=pa.uint64()), columns=columns)

    def _file_rows(self, frag: Any, columns: Columns) -> _FileRows | None:
        files: dict[tuple[int, Any], _FileRows | None] | None
        files = getattr(self._files, "by_key", None)
        if files is None:
            files = self._files.by_key = {}
        key = (frag.fragment_id, tuple(columns.items()) if columns is not None else None)
        known = files.get(key)
        if key not in files or (known is not None and not known.local
                                and object_cache.has_copy(self.source, frag)):
            files[key] = _FileRows.open(self.ds, frag, columns, self.source)
        return files[key]

    def _ranges(self, ids: np.ndarray) -> list[_Range] | None:
        """The range reads that cover `ids`, or None to use take.

        Rows less than RANGE_GAP apart share a read (the rows between are dropped),
        so a block-shuffle chunk that lent a few rows to the first batch is still
        read as whole blocks. Only when the reads average >= MIN_RANGE_ROWS of
        `ids` and ids are row addresses whose offsets are scan offsets: no stable
        row ids, no deletions in those fragments.
        """
        if len(ids) < MIN_RANGE_ROWS or self.ds.has_stable_row_ids:
            return None
        # A fragment change is a jump of ~2**32 in the address: always a cut.
        cuts = np.flatnonzero(np.diff(ids) > RANGE_GAP) + 1
        if len(ids) < MIN_RANGE_ROWS * (len(cuts) + 1):
            return None
        starts = np.concatenate([[0], cuts]).tolist()
        ends = [*starts[1:], len(ids)]
        out: list[_Range] = []
        for start, end in zip(starts, ends, strict=True):
            first, last = int(ids[start]), int(ids[end - 1])
            frag = self._fragments.get(first >> 32)
            if frag is None or frag.metadata.deletion_file is not None:
                return None
            span = last - first + 1
            keep = None if span == end - start else ids[start:end] - first
            out.append(_Range(frag, first & 0xFFFFFFFF, span, keep))
        return out


@dataclasses.dataclass(frozen=True)
class _Range:
    """One range read: `rows` rows of `fragment` from `offset`, of which `keep` (all if None)."""

    fragment: Any
    offset: int
    rows: int
    keep: np.ndarray | None

    @property
    def wanted(self) -> int:
        return self.rows if self.keep is None else len(self.keep)

    @property
    def dense(self) -> bool:
        """Long, and at least half the rows wanted: read them all and drop the rest."""
        return self.rows >= RANGE_READ_ROWS and 2 * self.wanted >= self.rows

    def offsets(self) -> np.ndarray:
        """The wanted rows' offsets in the fragment."""
        if self.keep is None:
            return np.arange(self.offset, self.offset + self.rows, dtype=np.int64)
        return self.offset + self.keep.astype(np.int64, copy=False)


def _pieces(runs: list[_Range]) -> Iterator[list[_Range]]:
    """The reads for `runs`: a dense run alone; other runs of one fragment (short or
    sparse) together, about TAKE_PIECE_ROWS wanted rows a piece."""
    piece: list[_Range] = []
    rows = 0
    for run in runs:
        if piece and (run.dense or run.fragment is not piece[0].fragment
                      or rows >= TAKE_PIECE_ROWS):
            yield piece
            piece, rows = [], 0
        if run.dense:
            yield [run]
            continue
        piece.append(run)
        rows += run.wanted
    if piece:
        yield piece


class _FileRows:
    """Rows of one fragment read from its data file, past the scan planner.

    Only where that gives exactly the scanner's rows and columns: one data file
    (Lance format v2+, in the dataset's own directory), no deletions, and every
    selected column a plain column whose name in the file belongs to the same
    field id as in the dataset (a renamed or re-added column falls back).
    """

    def __init__(self, reader: lance.file.LanceFileReader, names: list[str],
                 local: bool = True) -> None:
        self.reader, self.names = reader, names
        self.local = local  # False: read from the store (reopened once a local copy is whole)

    @classmethod
    def open(
        cls, ds: lance.LanceDataset, frag: Any, columns: Columns, source: SourceSpec | None
    ) -> _FileRows | None:
        files = frag.data_files()
        if frag.metadata.deletion_file is not None or len(files) != 1:
            return None
        data = files[0]
        if getattr(data, "base_id", None) is not None or data.file_major_version < 2:
            return None
        field_ids = {f.name(): f.id() for f in ds.lance_schema.fields()}
        picked = dict(columns) if columns is not None else {n: n for n in ds.schema.names}
        if not all(src in field_ids for src in picked.values()):
            return None  # SQL expressions: the scanner evaluates them
        try:
            path, options, local = object_cache.data_file(ds, data.path, source)
            reader = lance.file.LanceFileReader(path, storage_options=options,
                                                columns=list(picked.values()))
            file_fields = list(reader.metadata().schema)
        except Exception:  # an object store it cannot reach this way: the scanner can
            return None
        if len(file_fields) != len(data.fields):
            return None  # nested fields: ids do not line up with top-level columns
        in_file = {f.name: (fid, f.type) for f, fid in zip(file_fields, data.fields, strict=True)}
        for src in picked.values():
            if in_file.get(src) != (field_ids[src], ds.schema.field(src).type):
                return None
        return cls(reader, list(picked), local)

    def read(self, offset: int, count: int) -> pa.Table:
        """Rows [offset, offset + count)."""
        table = self.reader.read_range(offset, count, batch_size=count, batch_readahead=1)
        return table.to_table().rename_columns(self.names)

    def take(self, offsets: np.ndarray) -> pa.Table:
        """Rows at sorted `offsets`."""
        table = self.reader.take_rows(offsets, batch_size=4096, batch_readahead=4)
        return table.to_table().rename_columns(self.names)


class TableReader:
    """Fallback for tables without `to_lance` (memory:// and remote `db://`): offsets via
    the query API.

    `source` (when given) names the source in the `SourceError` any read raises.
    """

    def __init__(self, table: Any, source: SourceSpec | None = None) -> None:
        self.table = table
        self.source = source
        self._filtered: dict[str, np.ndarray] = {}

    def payloads(self, columns: Columns) -> Payloads:
        with reading(self.source):
            return Payloads.of(self.table.schema, columns)

    def describe_row(self, row_id: int) -> str:
        return f"row {row_id}"

    def schema(self, columns: Columns) -> pa.Schema:
        if columns is None:
            with reading(self.source):
                return Payloads.of(self.table.schema, None).schema(self.table.schema)
        return self.take(np.array([0], dtype=np.int64), columns).schema

    def universe(self, filter: str | None, split: SplitSpec | None = None) -> Universe:
        split_rows: tuple[tuple[str, int], ...] = ()
        if split is None:
            offsets = self._offsets(filter)
        else:
            with reading(self.source):
                by = {} if split.by == RANDOM_SPLIT else {split.by: split.by}
                query = self.table.search()
                if filter is not None:
                    query = query.where(filter)
                found = query.select({"_rowoffset": "_rowoffset", **by}).limit(None).to_arrow()
            found = found.sort_by("_rowoffset")
            offsets = found["_rowoffset"].to_numpy().astype(np.int64)
            assigned = splits.assign(found[split.by] if by else np.arange(len(offsets)), split)
            split_rows = tuple(splits.counts(assigned, split).items())
            if split.split is not None:
                offsets = offsets[assigned == split.index]
        if offsets is None:
            with reading(self.source):
                n = int(self.table.count_rows())
        else:
            n = len(offsets)
        chosen = split is not None and split.split is not None
        return Universe(np.zeros(1, dtype=np.int64), np.array([n], dtype=np.int64), offsets,
                        True, scannable=not chosen, split_rows=split_rows)

    def _offsets(self, filter: str | None) -> np.ndarray | None:
        """The offsets of the rows `filter` keeps, in table order (None: every row)."""
        if filter is None:
            return None
        if filter not in self._filtered:
            with reading(self.source):
                found = (self.table.search().where(filter)
                         .select({"_rowoffset": "_rowoffset"}).limit(None).to_arrow())
            self._filtered[filter] = np.sort(found["_rowoffset"].to_numpy().astype(np.int64))
        return self._filtered[filter]

    def scan(
        self,
        run: ScanRun,
        columns: Columns,
        filter: str | None,
        batch_size: int,
        batch_readahead: int | None,
    ) -> Iterator[pa.RecordBatch]:
        ids = np.arange(run.offset, run.offset + run.limit, dtype=np.int64)
        offsets = self._offsets(filter)
        if offsets is not None:  # the run counts the filter's rows, as a scanner's offset does
            ids = offsets[ids]
        return iter(self.take(ids, columns).to_batches(max_chunksize=batch_size))

    def head(self, columns: Columns, filter: str | None) -> pa.Table:
        offsets = self._offsets(filter)
        first = np.arange(1, dtype=np.int64) if offsets is None else offsets[:1]
        return self.take(first, columns)

    def take(self, ids: np.ndarray, columns: Columns) -> pa.Table:
        with reading(self.source):
            return self._take(ids, columns)

    def _take(self, ids: np.ndarray, columns: Columns) -> pa.Table:
        query = self.table.take_offsets([int(i) for i in ids])
        names = list(columns) if columns is not None else list(self.table.schema.names)
        selection: Any = dict(columns) if columns is not None else names
        if isinstance(selection, dict):
            selection["_rowoffset"] = "_rowoffset"
        else:
            selection = [*selection, "_rowoffset"]
        # take_offsets promises no order: sort by offset to match the sorted ids.
        tbl = query.select(selection).to_arrow().sort_by("_rowoffset")
        payloads = Payloads.of(self.table.schema, columns)
        if payloads.blobs:
            raise SourceError(f"blob columns ({', '.join(payloads.blobs)}) are read through "
                              "Lance's blob API, which this table does not offer")
        return payloads.deliver(None, tbl, ids, names) if payloads else tbl.select(names)


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


def reader_for(obj: Any, source: SourceSpec | None = None,
               reads_in_flight: int | None = None) -> Reader:
    """Wrap what `open_source(source)` returned in the fastest reader that can read it
    (`reads_in_flight`: the recipe's, or None for the default of where it lives)."""
    own = getattr(obj, "reader", None)
    if callable(own):  # a handle that knows its reader (a mixture's)
        return own(source, reads_in_flight)
    ds = as_lance_dataset(obj)
    if ds is not None:
        return LanceReader(ds, source, reads_in_flight)
    if hasattr(obj, "take_offsets"):
        return TableReader(obj, source)
    raise SourceError(f"cannot read from a {type(obj).__name__}: not a Lance dataset or table")

