"""A mixture (`sources`): several sources, each opened, pinned and filtered on its own,
read as one universe whose rows carry their source in the top bits of their id.

The sampler interleaves the sources by weight (samplers/mixing.py); a task's ids
name rows of any source, and the reader splits them by source, reads each part
from its own reader and hands them back in id order. Each source keeps its own
connection factory, version and secrets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from loaderkit.errors import SourceError
from loaderkit.runtime import rowids
from loaderkit.runtime.sources.kind import SourceKind
from loaderkit.runtime.sources.payloads import Payloads
from loaderkit.runtime.sources.reader import Columns, Reader, SourceChecks
from loaderkit.runtime.spec import SourceSpec, SplitSpec
from loaderkit.runtime.universe import Mixture, ScanRun, Universe
from loaderkit.vocabulary import Text, resolve_text


# A mixture's sources are opened, pinned and read by their own kinds, from the package
# that lists them (this one among them): asked when a mixture is, not on import.
def _kind_of(source: SourceSpec) -> type[SourceKind]:
    from loaderkit.runtime.sources import kind_of

    return kind_of(source)


def _open(source: SourceSpec) -> Any:
    from loaderkit.runtime.sources import open_source

    return open_source(source)


def and_filters(*filters: Text | None) -> str | None:
    """The filters that are set, ANDed (None when none is); references read here."""
    present = [resolve_text(f) for f in filters if f is not None]
    if len(present) <= 1:
        return present[0] if present else None
    return " AND ".join(f"({f})" for f in present)


@dataclass
class MixtureHandle:
    """What opening a mixture gives: each source opened, in the order of `sources`."""

    source: SourceSpec
    handles: list[Any]

    @property
    def version(self) -> int:
        raise SourceError("a mixture has no single version: each of its sources is pinned")


class MixtureSourceKind(SourceKind):
    name = "mixture"
    label = "mixture of sources"

    @staticmethod
    def matches(source: SourceSpec) -> bool:
        return bool(source.parts)

    @staticmethod
    def open(source: SourceSpec) -> Any:
        return MixtureHandle(source, [_open(part.source) for part in source.parts])

    @staticmethod
    def reader(handle: Any, source: SourceSpec, reads_in_flight: int | None = None) -> Reader:
        """`source`: the spec reads are named by (pinned, once planned)."""
        return MixtureReader(source, handle.handles, reads_in_flight)

    @staticmethod
    def pinned(source: SourceSpec, handle: Any) -> SourceSpec:
        parts = tuple(dataclasses.replace(part, source=_kind_of(part.source).pinned(part.source, h))
                      for part, h in zip(source.parts, handle.handles, strict=True))
        return dataclasses.replace(source, parts=parts)

    @staticmethod
    def crosses_to_workers(source: SourceSpec) -> bool:
        return all(_kind_of(p.source).crosses_to_workers(p.source) for p in source.parts)

    @staticmethod
    def secrets(source: SourceSpec) -> list[tuple[tuple[str, ...], Text]]:
        return [(("sources", part.name, *key[1:]), value) for part in source.parts
                for key, value in [*_kind_of(part.source).secrets(part.source),
                                   (("source", "filter"), part.filter)]
                if value is not None]


class MixtureReader:
    """Reads a mixture's rows by id: each id's source from its top bits."""

    def __init__(self, source: SourceSpec, handles: list[Any],
                 reads_in_flight: int | None = None) -> None:
        self.source = source
        self.readers = [_kind_of(part.source).reader(h, part.source, reads_in_flight)
                        for h, part in zip(handles, source.parts, strict=True)]
        # Per projection: every task casts its pieces to it, and asking a table costs a read.
        self._schemas: dict[tuple[tuple[str, str], ...] | None, pa.Schema] = {}

    def universe(self, filter: str | None, split: SplitSpec | None = None) -> Universe:
        parts = tuple(reader.universe(and_filters(filter, part.filter), split)
                      for reader, part in zip(self.readers, self.source.parts, strict=True))
        sizes = tuple(u.size for u in parts)
        counts: dict[str, int] = {}
        for u in parts:
            for name, rows in u.split_rows:
                counts[name] = counts.get(name, 0) + rows
        mixture = Mixture(tuple(p.name for p in self.source.parts), sizes,
                          tuple(p.weight for p in self.source.parts), self.source.stop)
        return Universe(np.arange(len(parts), dtype=np.int64), np.array(sizes, dtype=np.int64),
                        None, scannable=False, mixture=mixture, split_rows=tuple(counts.items()),
                        parts=parts)

    def schema(self, columns: Columns) -> pa.Schema:
        key = tuple(columns.items()) if columns is not None else None
        if key not in self._schemas:
            self._schemas[key] = self.readers[0].schema(columns)
        return self._schemas[key]

    def payloads(self, columns: Columns) -> Payloads:
        found = [reader.payloads(columns) for reader in self.readers]
        return next((p for p in found if p), found[0])

    def describe_row(self, row_id: int) -> str:
        index, local = rowids.source_of(row_id), rowids.local_of(row_id)
        name = self.source.parts[index].name
        return f"source '{name}', {self.readers[index].describe_row(local)}"

    def head(self, columns: Columns, filter: str | None) -> pa.Table:
        return self.readers[0].head(columns, and_filters(filter, self.source.parts[0].filter))

    def _by_source(self, ids: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Sorted ids, cut where the source changes: (source index, its own ids)."""
        sources = rowids.source_of(ids)
        cuts = np.flatnonzero(np.diff(sources)) + 1
        for part in np.split(ids, cuts):
            if len(part):
                yield int(rowids.source_of(part[0])), rowids.local_of(part)

    def take_parts(self, ids: np.ndarray, columns: Columns) -> Iterator[pa.Table]:
        schema = self.schema(columns)
        for index, local in self._by_source(ids):
            for piece in self.readers[index].take_parts(local, columns):
                # Same column types (checked at build); one schema, metadata included.
                yield pa.Table.from_arrays(piece.columns, schema=schema)

    def checks(self) -> SourceChecks:
        """The first source's checks (bind checks each source of a mixture on its own)."""
        return self.readers[0].checks()

    def take(self, ids: np.ndarray, columns: Columns) -> pa.Table:
        return pa.concat_tables(list(self.take_parts(ids, columns)))

    def scan(self, run: ScanRun, columns: Columns, filter: str | None,
             batch_size: int, batch_readahead: int | None) -> Iterator[pa.RecordBatch]:
        raise SourceError("a mixture is read by row ids, never scanned")
