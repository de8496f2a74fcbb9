"""A chunk: what one task yields, an iterable of finished batches that crosses from a worker.

`HeldChunk` holds the chunk's rows once, in a format's held form, and makes each
batch as the consumer reaches it (a slice, or a gather of shuffled rows), so a
worker ships one buffer per column per chunk, not one per batch. `ReadyChunk` is
batches already finished (a transform's results, a scan read in this process).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from loaderkit.runtime.formats import BatchFormat
from loaderkit.runtime.gathering import empty_rows


class Chunk:
    """Finished batches, in delivery order."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def pin_memory(self) -> list[Any]:
        """DataLoader's pin-memory thread: the batches, pinned."""
        from torch.utils.data._utils.pin_memory import pin_memory

        return [pin_memory(b) for b in self]


class ReadyChunk(Chunk):
    """Batches already made."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[Any]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class HeldChunk(Chunk):
    """A chunk's rows held in `fmt`; iterating yields its finished `batch_size` batches.

    Without `order` a batch is a slice (a view); with it, batch i is the rows
    `order[i*bs:(i+1)*bs]`, gathered when it is reached. `deliver`: the chunk is
    held as Arrow and each batch is converted to that format on the way out.
    """

    def __init__(
        self,
        data: Any,
        fmt: BatchFormat,
        batch_size: int,
        order: np.ndarray | None = None,
        deliver: BatchFormat | None = None,
    ) -> None:
        self.data, self.fmt, self.batch_size = data, fmt, batch_size
        self.order, self.deliver = order, deliver
        self.rows = len(order) if order is not None else fmt.rows(data)

    def __len__(self) -> int:
        return -(-self.rows // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        fmt = self.fmt
        for a in range(0, self.rows, self.batch_size):
            b = min(a + self.batch_size, self.rows)
            if self.order is None:
                batch = fmt.slice(self.data, a, b)
            else:
                batch = fmt.gather(self.data, self.order[a:b])
            yield fmt.finish(batch) if self.deliver is None else self.deliver.deliver(batch)
        # Consumed: let the chunk's buffer go now, not when the caller's loop
        # variable moves on (by then the next two chunks are in memory too).
        self.data = self.order = None
        self.rows = 0


def one_batch(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One contiguous record batch (a copy only when there are several)."""
    if len(batches) == 1:
        return batches[0]
    combined = pa.Table.from_batches(batches).combine_chunks().to_batches()
    return combined[0] if combined else batches[0].slice(0, 0)


def rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Exactly `batch_size` rows per batch (the last may be shorter), as they arrive.

    Scanners cut short at the end of a run; only the rows that fill such a
    short batch are copied, and full batches pass through untouched.
    """
    pending: list[pa.RecordBatch] = []  # pieces of the next batch, `have` rows
    have = 0
    for batch in batches:
        if not pending and batch.num_rows == batch_size:  # the common case, as it came
            yield batch
            continue
        start = 0
        while start < batch.num_rows:
            if not pending and batch.num_rows - start >= batch_size:
                yield batch.slice(start, batch_size)  # zero-copy
                start += batch_size
                continue
            piece = batch.slice(start, min(batch_size - have, batch.num_rows - start))
            pending.append(piece)
            have += piece.num_rows
            start += piece.num_rows
            if have == batch_size:
                yield one_batch(pending)
                pending, have = [], 0
    if pending:
        yield one_batch(pending)


def fill(parts: Iterable[pa.Table], rows: int, fmt: BatchFormat) -> dict[str, np.ndarray] | None:
    """`parts` (consecutive tables, `rows` in all) as one array per column of a gathering
    `fmt`, filled piece by piece: one chunk-sized buffer, never two.

    None when there are no rows to learn the column shapes from.
    """
    if fmt.columns is None:
        raise TypeError(f"format {fmt.name!r} does not hold columns as arrays")
    bufs: dict[str, np.ndarray] | None = None
    at = 0
    for part in parts:
        for b in part.to_batches():
            if not b.num_rows:
                continue
            arrays = fmt.columns(fmt.convert(b))
            if bufs is None:
                bufs = empty_rows(arrays, rows)
            for k, v in arrays.items():
                bufs[k][at : at + len(v)] = v
            at += b.num_rows
    if bufs is None:
        return None
    if at != rows:
        raise RuntimeError(f"read {at} rows of {rows}")
    return bufs
