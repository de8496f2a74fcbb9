"""Columns whose scanned value is not what the recipe means: blobs and Hugging Face images.

A blob column (`large_binary` with `lance-encoding:blob` on 2.1 files, the
`lance.blob.v2` type on 2.2 files) scans as a descriptor (`{position, size}`, or
`{kind, position, size, blob_id, blob_uri}`): its bytes come from Lance's planned
blob reader (`read_blobs`), one call per column per batch of rows. A Hugging Face
`Image` feature (the `huggingface` schema metadata that `lance.write_dataset(hf_ds)`
keeps) is `struct<bytes, path>`: its bytes, or the file at `path` when they are
null. The reader delivers both as `large_binary` bytes, in every format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from loaderkit.errors import SourceError

BLOB_V2 = "lance.blob.v2"
ROW_ID = "_rowid"


def is_blob(f: pa.Field) -> bool:
    if isinstance(f.type, pa.ExtensionType) and f.type.extension_name == BLOB_V2:
        return True
    return bool(f.metadata and f.metadata.get(b"lance-encoding:blob") == b"true")


def image_features(schema: pa.Schema) -> set[str]:
    """Columns a Hugging Face dataset declared as `Image` features."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if raw is None:
        return set()
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return set()
    return {name for name, feature in features.items()
            if isinstance(feature, dict) and feature.get("_type") == "Image"
            and name in schema.names and pa.types.is_struct(schema.field(name).type)}


@dataclass(frozen=True)
class Payloads:
    """The projection's blob and image columns (output name -> dataset column)."""

    blobs: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, schema: pa.Schema, columns: dict[str, str] | None) -> Payloads:
        picked = columns if columns is not None else {n: n for n in schema.names}
        images = image_features(schema)
        names = set(schema.names)
        return cls(
            blobs={out: src for out, src in picked.items()
                   if src in names and is_blob(schema.field(src))},
            images={out: src for out, src in picked.items() if src in images})

    def __bool__(self) -> bool:
        return bool(self.blobs or self.images)

    def scanned(self, schema: pa.Schema, columns: dict[str, str] | None) -> dict[str, str]:
        """What the scanner reads for `columns`: blob columns are read apart."""
        picked = columns if columns is not None else {n: n for n in schema.names}
        return {out: src for out, src in picked.items() if out not in self.blobs}

    def schema(self, schema: pa.Schema) -> pa.Schema:
        """`schema` (of the projection) as delivered: these columns hold bytes."""
        return pa.schema([pa.field(f.name, pa.large_binary()) if f.name in self.blobs
                          or f.name in self.images else f for f in schema],
                         metadata=schema.metadata)

    def deliver(self, ds: Any, scanned: pa.Table | pa.RecordBatch, ids: np.ndarray,
                names: list[str]) -> pa.Table:
        """The rows `ids` as delivered: `scanned` (their other columns, same order) with the
        blob columns read and the image columns' bytes, in the order of `names`."""
        columns = []
        for name in names:
            if name in self.blobs:
                columns.append(self._blob_bytes(ds, self.blobs[name], ids))
            elif name in self.images:
                columns.append(self._image_bytes(name, scanned.column(name)))
            else:
                columns.append(scanned.column(name))
        return pa.Table.from_arrays(columns, names=names)

    @staticmethod
    def _blob_bytes(ds: Any, column: str, ids: np.ndarray) -> pa.Array:
        if not len(ids):
            return pa.array([], pa.large_binary())
        read = ds.read_blobs(column, ids=pa.array(ids, pa.uint64()), preserve_order=True)
        return pa.array([payload for _, payload in read], pa.large_binary())

    @staticmethod
    def _image_bytes(name: str, images: Any) -> pa.Array:
        if isinstance(images, pa.ChunkedArray):
            images = images.combine_chunks()
        data = images.field("bytes").to_pylist()
        paths = images.field("path").to_pylist()
        out = []
        for row, (raw, path) in enumerate(zip(data, paths, strict=True)):
            if raw is None and path:
                try:
                    raw = Path(path).read_bytes()
                except OSError as exc:
                    raise SourceError(f"column {name!r}, row {row} of its batch: the image "
                                      f"has no bytes and its path cannot be read: {exc}") from exc
            out.append(raw)
        return pa.array(out, pa.large_binary())
