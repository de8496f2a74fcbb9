"""Row gathers over in-memory columns: `out[c][i] = columns[c][positions[i]]`.

Shuffled batches are gathers: a block-shuffle batch from its chunk, a cache-mode
chunk from the cache. Rows picked at random from tens or hundreds of MB wait on
memory one by one; the compiled loop (`_gather.c`, built with the package where
a C compiler was found) asks for the rows a few positions ahead and copies every
column's row in one pass. Without it, numpy's `take` per column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

take_rows: Callable[[tuple[Any, ...], Any, tuple[Any, ...]], None] | None
try:
    from loaderkit.runtime._gather import take_rows
except ImportError:  # no C compiler at install: numpy's take, ~1.4x slower gathers
    take_rows = None


def take_into(
    columns: Sequence[np.ndarray], positions: np.ndarray, outputs: Sequence[np.ndarray]
) -> None:
    """Fill `outputs[c]` with the rows `positions` (int64) of `columns[c]`.

    Raises IndexError for a position outside the columns' rows, before copying.
    """
    if take_rows is not None and all(
        c.flags.c_contiguous and not c.dtype.hasobject for c in columns
    ):
        take_rows(tuple(columns), positions, tuple(outputs))
        return
    rows = len(columns[0]) if columns else 0
    if len(positions) and (positions.min() < 0 or positions.max() >= rows):
        raise IndexError(f"positions outside the {rows} rows")
    # Into `out`, np.take's default mode ("raise") gathers into a temporary buffer
    # and copies it over: half the speed, measured. Bounds are checked above.
    for column, out in zip(columns, outputs, strict=True):
        np.take(column, positions, axis=0, out=out, mode="clip")


def empty_rows(columns: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """Uninitialised arrays for `rows` rows of each column."""
    return {k: np.empty((rows, *v.shape[1:]), v.dtype) for k, v in columns.items()}


def gather(columns: dict[str, np.ndarray], positions: np.ndarray) -> dict[str, np.ndarray]:
    """The rows `positions` of every column, as new arrays."""
    positions = np.ascontiguousarray(positions, dtype=np.int64)
    out = empty_rows(columns, len(positions))
    take_into(list(columns.values()), positions, list(out.values()))
    return out
