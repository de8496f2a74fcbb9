"""Opening a source and reading rows from it: the only module that talks to Lance/LanceDB.

A worker receives a `SourceSpec` (plain data, secrets as `EnvValue` names) and
calls `open_reader` itself: a `LanceDataset` is never pickled, because it
carries its resolved storage options, credentials included.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from typing import Any, Protocol

import lance
import numpy as np
import pyarrow as pa

from loaderkit.runtime.errors import SourceError
from loaderkit.runtime.plans import ScanRun, Universe
from loaderkit.runtime.spec import SourceSpec, resolve_text

Columns = dict[str, str] | None


def import_attr(path: str) -> Any:
    """Resolve "package.module:attribute" (dots allowed after the colon)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise SourceError(f"{path!r} is not of the form 'module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SourceError(f"cannot import {path!r}: {exc}") from exc
    return obj


def _storage_options(source: SourceSpec) -> dict[str, str] | None:
    # Resolved here, in the process that uses them, and never stored on a spec.
    opts = {k: resolve_text(v) for k, v in source.storage_options.items()}
    return opts or None


def _checkout(obj: Any, version: int | str | None) -> Any:
    if version is None:
        return obj
    if isinstance(obj, lance.LanceDataset):
        return obj.checkout_version(version)
    if getattr(obj, "version", None) != version:
        obj.checkout(version)
    return obj


def _describe(source: SourceSpec) -> str:
    # Only names that are safe to print: the uri (an EnvValue reprs as its name) and table.
    where = repr(source.uri) if not isinstance(source.uri, str) else source.uri
    return f"{where} table {source.table!r}" if source.table else where


def open_source(source: SourceSpec) -> Any:
    """Open the source in this process: a `lance.LanceDataset` or a LanceDB table.

    The pinned `version` (if any) is checked out, so every reader sees the same rows.
    """
    try:
        if source.connection_factory is not None:
            factory = import_attr(source.connection_factory)
            name = source.table if source.table is not None else resolve_text(source.uri)
            return _checkout(factory(name), source.version)
        uri = resolve_text(source.uri)
        if source.is_lancedb:
            import lancedb

            kwargs: dict[str, Any] = {"storage_options": _storage_options(source)}
            if source.api_key is not None:
                kwargs["api_key"] = resolve_text(source.api_key)
            if source.region is not None:
                kwargs["region"] = source.region
            if source.host_override is not None:
                kwargs["host_override"] = source.host_override
            table = lancedb.connect(uri, **kwargs).open_table(str(source.table))
            return _checkout(table, source.version)
        return lance.dataset(uri, version=source.version, storage_options=_storage_options(source))
    except SourceError:
        raise
    except Exception as exc:  # Lance raises plain ValueError/OSError/RuntimeError
        raise SourceError(f"cannot open {_describe(source)}: {exc}") from exc


def pin_version(source: SourceSpec) -> SourceSpec:
    """Return `source` with `version` set to the version current now (if it was unset).

    Workers open exactly this version, so an append during training cannot
    change the rows (or their addresses) of an epoch already planned.
    """
    if source.version is not None:
        return source
    return dataclasses.replace(source, version=int(open_source(source).version))


class Reader(Protocol):
    """What the planner and the workers need from a source."""

    def schema(self, columns: Columns) -> pa.Schema: ...

    def universe(self, filter: str | None) -> Universe: ...

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

    def take(self, ids: np.ndarray, columns: Columns) -> pa.Table:
        """Rows for *sorted, unique* `ids` (as produced by `Universe.ids`), in that order."""
        ...


class LanceReader:
    """Fast path: a Lance dataset (directly, or behind a local LanceDB table)."""

    def __init__(self, ds: lance.LanceDataset) -> None:
        self.ds = ds
        self._fragments = {f.fragment_id: f for f in ds.get_fragments()}

    def schema(self, columns: Columns) -> pa.Schema:
        if columns is None:
            return self.ds.schema
        # An empty-limit scan resolves SQL expression columns to their real types.
        return self.ds.scanner(columns=columns, limit=0).projected_schema

    def universe(self, filter: str | None) -> Universe:
        frags = self.ds.get_fragments()
        frag_ids = np.array([f.fragment_id for f in frags], dtype=np.int64)
        explicit = (
            filter is not None
            or self.ds.has_stable_row_ids
            or any(f.metadata.deletion_file is not None for f in frags)
        )
        if not explicit:
            # Addresses follow from the layout: no per-row array, so a billion-row
            # full scan plans in O(fragments) memory.
            rows = np.array([f.metadata.physical_rows for f in frags], dtype=np.int64)
            return Universe(frag_ids, rows, None)
        # One cheap projection-free scan (row ids and addresses only) names the rows.
        tbl = self.ds.to_table(columns=[], with_row_id=True, with_row_address=True, filter=filter)
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
        return Universe(frag_ids, rows, row_ids)

    def scan(
        self,
        run: ScanRun,
        columns: Columns,
        filter: str | None,
        batch_size: int,
        batch_readahead: int | None,
    ) -> Iterator[pa.RecordBatch]:
        fragments = [self._fragments[fid] for fid in run.fragment_ids]
        scanner = self.ds.scanner(
            columns=columns,
            filter=filter,
            fragments=fragments,
            offset=run.offset,
            limit=run.limit,
            batch_size=batch_size,
            batch_readahead=batch_readahead,
            scan_in_order=True,
        )
        return iter(scanner.to_batches())

    def head(self, columns: Columns, filter: str | None) -> pa.Table:
        return self.ds.scanner(columns=columns, filter=filter, limit=1).to_table()

    def take(self, ids: np.ndarray, columns: Columns) -> pa.Table:
        # Row ids / addresses: cheaper than offsets (no offset -> fragment search).
        return self.ds._take_rows(pa.array(ids, type=pa.uint64()), columns=columns)


class TableReader:
    """Fallback for tables without `to_lance` (remote `db://`): offsets via the query API."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def schema(self, columns: Columns) -> pa.Schema:
        if columns is None:
            return self.table.schema
        return self.take(np.array([0], dtype=np.int64), columns).schema

    def universe(self, filter: str | None) -> Universe:
        if filter is not None:
            # Offsets are positions in the unfiltered table; a filtered universe would
            # need row ids, which remote tables do not promise to keep stable.
            raise SourceError("'filter' is not supported for tables read without to_lance()")
        n = int(self.table.count_rows())
        return Universe(np.zeros(1, dtype=np.int64), np.array([n], dtype=np.int64), None, True)

    def scan(
        self,
        run: ScanRun,
        columns: Columns,
        filter: str | None,
        batch_size: int,
        batch_readahead: int | None,
    ) -> Iterator[pa.RecordBatch]:
        ids = np.arange(run.offset, run.offset + run.limit, dtype=np.int64)
        return iter(self.take(ids, columns).to_batches(max_chunksize=batch_size))

    def head(self, columns: Columns, filter: str | None) -> pa.Table:
        return self.take(np.array([0], dtype=np.int64), columns)

    def take(self, ids: np.ndarray, columns: Columns) -> pa.Table:
        query = self.table.take_offsets([int(i) for i in ids])
        names = list(columns) if columns is not None else list(self.table.schema.names)
        selection: Any = dict(columns) if columns is not None else names
        if isinstance(selection, dict):
            selection["_rowoffset"] = "_rowoffset"
        else:
            selection = [*selection, "_rowoffset"]
        # take_offsets promises no order: sort by offset to match the sorted ids.
        tbl = query.select(selection).to_arrow().sort_by("_rowoffset")
        return tbl.select(names)


def as_lance_dataset(obj: Any) -> lance.LanceDataset | None:
    """The Lance dataset behind what `open_source` returned, or None (remote tables)."""
    if isinstance(obj, lance.LanceDataset):
        return obj
    to_lance = getattr(obj, "to_lance", None)
    if to_lance is None:
        return None
    try:
        ds = to_lance()
    except NotImplementedError:
        return None
    return ds if isinstance(ds, lance.LanceDataset) else None


def reader_for(obj: Any) -> Reader:
    """Wrap what `open_source` returned in the fastest reader that can read it."""
    ds = as_lance_dataset(obj)
    if ds is not None:
        return LanceReader(ds)
    if hasattr(obj, "take_offsets"):
        return TableReader(obj)
    raise SourceError(f"cannot read from a {type(obj).__name__}: not a Lance dataset or table")


def open_reader(source: SourceSpec) -> Reader:
    return reader_for(open_source(source))
