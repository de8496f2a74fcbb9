"""Reading any LanceDB table by row offsets, through its query API: the fallback for
tables without a Lance dataset behind them (memory:// and remote `db://` tables)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from loaderkit.errors import SourceError
from loaderkit.runtime import splits
from loaderkit.runtime.sources.failures import reading
from loaderkit.runtime.sources.payloads import Payloads
from loaderkit.runtime.sources.reader import (
    Columns,
    SchemaChecks,
    SourceChecks,
    asks,
    refusal,
)
from loaderkit.runtime.spec import SourceSpec, SplitSpec
from loaderkit.runtime.universe import ScanRun, Universe


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
        split_rows: splits.SplitRows = ()
        if split is None:
            offsets = self._offsets(filter)
        else:
            offsets, split_rows = self._split_offsets(filter, split)
        if offsets is None:
            with reading(self.source):
                n = int(self.table.count_rows())
        else:
            n = len(offsets)
        return Universe(np.zeros(1, dtype=np.int64), np.array([n], dtype=np.int64), offsets,
                        True, scannable=not splits.chosen(split), split_rows=split_rows)

    def _split_offsets(self, filter: str | None, split: SplitSpec
                       ) -> tuple[np.ndarray, splits.SplitRows]:
        """The offsets of the rows `filter` keeps that are in the split read, in table order;
        and the rows of each split."""
        with reading(self.source):
            by = {column: column for column in splits.by_column(split)}
            query = self.table.search()
            if filter is not None:
                query = query.where(filter)
            found = query.select({"_rowoffset": "_rowoffset", **by}).limit(None).to_arrow()
        found = found.sort_by("_rowoffset")
        offsets = found["_rowoffset"].to_numpy().astype(np.int64)
        keep, counts = splits.select(found[split.by] if by else np.arange(len(offsets)), split)
        return (offsets if keep is None else offsets[keep]), splits.named(counts, split)

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

    def take_parts(self, ids: np.ndarray, columns: Columns) -> Iterator[pa.Table]:
        """`take`, in one piece: the query API reads the rows at once."""
        yield self.take(ids, columns)

    def checks(self) -> SourceChecks:
        try:
            schema = self.table.schema
        except Exception:  # a remote table out of reach, an object of the user's: the reads
            schema = None  # will tell, at the source, as they always did
        if _local_table(self.table) or not hasattr(self.table, "search"):
            return TableChecks(self.table, schema)
        # A remote table (a server's refusal of a query loaderkit made up would say nothing
        # about the recipe), or an object of the user's with a query API of its own.
        return SchemaChecks(schema)

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


# Why a filter cannot run on a table without the query API (an object of the user's that
# only takes offsets): `TableReader` selects a filter's rows through `search().where()`.
NO_QUERY_API = ("this table has no query API (`search`), which a filter runs through; "
                "return a LanceDB table from the connection factory, or drop the filter")


def _local_table(table: Any) -> bool:
    """Whether `table` is a LanceDB table of a database this process opened itself."""
    from lancedb.table import Table

    return isinstance(table, Table) and not type(table).__module__.startswith("lancedb.remote")


class TableChecks:
    """Bind's questions to a local LanceDB table, or an object that only takes offsets,
    asked the way it is read: a projection of `take_offsets` (which reads no row for no
    offsets), a filter of `search().where()`. A take that cannot be asked (an object of
    the user's) leaves the schema to say what it can."""

    def __init__(self, table: Any, schema: pa.Schema | None) -> None:
        self.table, self.schema = table, schema
        self.parses_filters = hasattr(table, "search")

    def column_problem(self, name: str, expression: str) -> str | None:
        try:
            self._projected({name: expression})
        except _UNASKABLE:
            return SchemaChecks(self.schema).column_problem(name, expression)
        except Exception as exc:  # the engines raise ValueError, OSError, RuntimeError...
            return refusal(exc)
        return None

    def filter_problem(self, text: str) -> str | None:
        if not self.parses_filters:
            return NO_QUERY_API
        return asks(lambda: self.table.search().where(text).limit(0).output_schema())

    def delivered(self, columns: Columns) -> pa.Schema | None:
        if self.schema is None:
            return None
        try:
            projected = self.schema if columns is None else self._projected(dict(columns))
        except _UNASKABLE:
            return None
        return Payloads.of(self.schema, columns).schema(projected)

    def _projected(self, columns: dict[str, str]) -> pa.Schema:
        """The schema `take_offsets` reads `columns` with (raises what the engine does)."""
        schema: pa.Schema = self.table.take_offsets([]).select(columns).output_schema()
        return schema


# What a take query that cannot be asked raises (an object of the user's without the API).
_UNASKABLE = (AttributeError, TypeError, NotImplementedError)
