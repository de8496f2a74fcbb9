"""The contract of a reader: what the planner, the workers and bind need from an open
source, whatever its kind (lance_reader.py, table_reader.py, mixture.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import pyarrow as pa

from loaderkit.errors import engine_message
from loaderkit.runtime.sources.payloads import Payloads
from loaderkit.runtime.spec import SplitSpec
from loaderkit.runtime.universe import ScanRun, Universe

Columns = dict[str, str] | None


class Reader(Protocol):
    """What the planner, the workers and bind need from an open source, whatever its kind
    (`SourceKind.reader` makes one). Engine errors are raised as `SourceError` naming
    the source (failures.py)."""

    def schema(self, columns: Columns) -> pa.Schema:
        """The projection's schema as delivered (blob and image columns as bytes)."""
        ...

    def universe(self, filter: str | None, split: SplitSpec | None = None) -> Universe:
        """The rows the recipe reads (after `filter` and the split), numbered by position."""
        ...

    def scan(
        self,
        run: ScanRun,
        columns: Columns,
        filter: str | None,
        batch_size: int,
        batch_readahead: int | None,
    ) -> Iterator[pa.RecordBatch]:
        """The rows of one scanner run (`Universe.runs`), in batches of `batch_size`."""
        ...

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

    def take_parts(self, ids: np.ndarray, columns: Columns) -> Iterator[pa.Table]:
        """`take`, as consecutive pieces, so a caller can copy them out as they arrive (one
        piece where a reader reads them all at once)."""
        ...

    def checks(self) -> SourceChecks:
        """What bind asks the source about the recipe, before any worker reads it."""
        ...


class SourceChecks(Protocol):
    """Bind's questions to one source (binding.py), each answered with the engine's
    refusal, or None: the engine accepts it, or nothing here can say (then the reads tell,
    at the source, as they always did)."""

    @property
    def schema(self) -> pa.Schema | None:
        """The source's own columns; None where it cannot be read here."""
        ...

    @property
    def parses_filters(self) -> bool:
        """Whether `filter_problem` asks the engine's SQL parser, so that bind can find
        where it stops reading a filter (it runs only the first complete expression)."""
        ...

    def column_problem(self, name: str, expression: str) -> str | None:
        """Why `expression` cannot be read as output column `name`."""
        ...

    def filter_problem(self, text: str) -> str | None:
        """Why filter `text` cannot run on the source."""
        ...

    def delivered(self, columns: Columns) -> pa.Schema | None:
        """The schema the projection is delivered with; None where no engine can say."""
        ...


def asks(query: Callable[[], object]) -> str | None:
    """The engine's refusal of `query` (its message), or None when it runs."""
    try:
        query()
    except Exception as exc:  # the engines raise ValueError, OSError, RuntimeError...
        return refusal(exc)
    return None


def refusal(exc: BaseException) -> str:
    """What an engine's error says of the query it refused."""
    return engine_message(exc).removeprefix("Invalid input, ")


# How a check says a plain column name is not in the schema.
NO_SUCH_COLUMN = "the dataset has no such column"
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SchemaChecks:
    """The checks of a source known only by its schema (a remote table, an object of the
    user's): a plain column name must be in it; nothing else is asked of a server whose
    refusal of a query loaderkit made up would say nothing about the recipe."""

    parses_filters = False

    def __init__(self, schema: pa.Schema | None) -> None:
        self.schema = schema

    def column_problem(self, name: str, expression: str) -> str | None:
        if self.schema is not None and _PLAIN_NAME.fullmatch(expression) \
                and expression not in self.schema.names:
            return NO_SUCH_COLUMN
        return None

    def filter_problem(self, text: str) -> str | None:
        return None

    def delivered(self, columns: Columns) -> pa.Schema | None:
        return None
