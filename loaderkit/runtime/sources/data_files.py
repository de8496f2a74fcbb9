"""Reading a fragment's rows straight from its data file, past the scan planner (where
that gives exactly the scanner's rows and columns)."""

from __future__ import annotations

from typing import Any

import lance
import lance.file
import numpy as np
import pyarrow as pa

from loaderkit.runtime import object_cache
from loaderkit.runtime.sources.reader import Columns
from loaderkit.runtime.spec import SourceSpec


class FileRows:
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
    ) -> FileRows | None:
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
