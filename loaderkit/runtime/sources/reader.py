"""The contract of a reader: what the planner, the workers and bind need from an open
source, whatever its kind (lance_reader.py, table_reader.py, mixture.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import pyarrow as pa

from loaderkit.runtime.sources.payloads import Payloads
from loaderkit.runtime.spec import SplitSpec
from loaderkit.runtime.universe import ScanRun, Universe

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
