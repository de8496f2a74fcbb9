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


def write_dataset(uri: str | Path, rows: int = ROWS) -> str:
    lance.write_dataset(make_table(0, rows), str(uri), max_rows_per_file=FRAGMENT_ROWS)
    return str(uri)


def build(
    source: SourceSpec | str,
    *,
    columns: dict[str, str] | None = NUMERIC,
    filter: str | None = None,
    format: Any = "torch",
    transform: str | None = None,
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
        ReadSpec(source=src, columns=columns, filter=filter, format=format, transform=transform),
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
