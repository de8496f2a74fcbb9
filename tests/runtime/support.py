"""Data builders and small helpers shared by the runtime tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import torch

from loaderkit.runtime import RecipeLoader, make_loader
from loaderkit.runtime.spec import LoaderSpec, ReadSpec, SamplerSpec, SourceSpec

ROWS = 1097
FRAGMENT_ROWS = 157
DIM = 8
NUMERIC = {"id": "id", "label": "label", "emb": "emb"}  # what tensor formats can hold


def make_table(start: int, rows: int) -> pa.Table:
    ids = np.arange(start, start + rows, dtype=np.int64)
    emb = (ids[:, None] * 10 + np.arange(DIM)[None, :]).astype(np.float32)
    return pa.table(
        {
            "id": ids,
            "label": (ids % 7).astype(np.int32),
            "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), DIM),
            "text": pa.array([f"row {i}" for i in ids]),
        }
    )


def write_dataset(uri: str | Path, rows: int = ROWS, start: int = 0,
                  fragment_rows: int = FRAGMENT_ROWS) -> str:
    lance.write_dataset(make_table(start, rows), str(uri), max_rows_per_file=fragment_rows)
    return str(uri)


def mixture(**parts: tuple[str, float]) -> SourceSpec:
    """A mixture of datasets: name=(uri, weight), in that order."""
    from loaderkit.runtime.spec import MixturePart

    return SourceSpec(uri="mixture", parts=tuple(
        MixturePart(name, SourceSpec(uri=uri), weight) for name, (uri, weight) in parts.items()))


IMAGE_ROWS = 150
IMAGE_SHAPE = (20, 24)  # (height, width)


def image_pixels(i: int) -> np.ndarray:
    """Row i's picture: [H, W, 3] uint8, different for every row."""
    h, w = IMAGE_SHAPE
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 9 + i) % 256, (y * 11 + 2 * i) % 256, np.full((h, w), i % 256)],
                    axis=-1).astype(np.uint8)


def encoded_images(rows: int = IMAGE_ROWS) -> list[bytes]:
    """Every third row a PNG (lossless), the others JPEG."""
    import io

    from PIL import Image

    out = []
    for i in range(rows):
        buffer = io.BytesIO()
        Image.fromarray(image_pixels(i)).save(buffer, "PNG" if i % 3 == 0 else "JPEG")
        out.append(buffer.getvalue())
    return out


def write_images(uri: str | Path, how: str, images: list[bytes] | None = None) -> str:
    """A dataset of `id`, `image`, `prompt` (in 5 fragments), the image stored `how`:
    'blob_v1' (2.1 files), 'blob_v2' (2.2 files) or 'hf' (a Hugging Face Image feature)."""
    images = images if images is not None else encoded_images()
    rows = len(images)
    ids = np.arange(rows, dtype=np.int64)
    prompts = [f"picture {i}" for i in ids]
    if how == "hf":
        import datasets

        hf = datasets.Dataset.from_dict({
            "id": ids.tolist(), "image": [{"bytes": b, "path": None} for b in images],
            "prompt": prompts}).cast_column("image", datasets.Image())
        lance.write_dataset(hf, str(uri), max_rows_per_file=rows // 5 + 1)
        return str(uri)
    if how == "blob_v1":
        field = pa.field("image", pa.large_binary(), metadata={"lance-encoding:blob": "true"})
        column = pa.array(images, pa.large_binary())
        version = "2.1"
    else:
        field, column, version = lance.blob_field("image"), lance.blob_array(images), "2.2"
    schema = pa.schema([pa.field("id", pa.int64()), field, pa.field("prompt", pa.string())])
    table = pa.Table.from_arrays([pa.array(ids), column, pa.array(prompts)], schema=schema)
    lance.write_dataset(table, str(uri), max_rows_per_file=rows // 5 + 1,
                        data_storage_version=version)
    return str(uri)


def build(
    source: SourceSpec | str,
    *,
    columns: dict[str, str] | None = NUMERIC,
    filter: str | None = None,
    format: Any = "torch",
    transform: str | None = None,
    decode: tuple[Any, ...] = (),
    split: Any = None,
    batch_size: int = 16,
    num_workers: int = 0,
    drop_last: bool = False,
    persistent_workers: bool = False,
    **sampler: Any,
) -> RecipeLoader:
    """A loader with small chunks (64 rows) so every epoch spans many tasks."""
    src = SourceSpec(uri=source) if isinstance(source, str) else source
    sampler = {"chunk_rows": 64, "block_rows": 8, **sampler}
    return make_loader(
        ReadSpec(source=src, columns=columns, filter=filter, format=format, transform=transform,
                 decode=decode, split=split),
        SamplerSpec(**sampler),
        LoaderSpec(
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=drop_last,
            persistent_workers=persistent_workers and num_workers > 0,
            multiprocessing_context="spawn" if num_workers else None,
        ),
    )


def through_workers(loader: RecipeLoader) -> list[Any]:
    """One pass in which the workers read all but the first chunks.

    The main process reads until every worker is up; on small data it would read
    the whole pass. Holding the consumer after the first batch until the workers
    count themselves up makes the hand-over happen early.
    """
    iterator = iter(loader)
    first = next(iterator)
    deadline = time.monotonic() + 120
    while loader.workers.up < loader.num_workers:
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.05)
    return [first, *iterator]


def ids_of(batches: Iterable[Any]) -> np.ndarray:
    """The `id` column of every batch, in delivery order (torch/arrow/numpy batches)."""
    parts = []
    for b in batches:
        col = b.column("id") if isinstance(b, pa.RecordBatch) else b["id"]
        parts.append(col.numpy() if isinstance(col, torch.Tensor) else np.asarray(col))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
