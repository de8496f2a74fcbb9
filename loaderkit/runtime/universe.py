"""The universe: the rows a recipe reads, fragment by fragment, numbered by position.

Positions 0..n-1 follow dataset order after `filter`. A universe turns positions
into what a reader reads: row ids/addresses for a take, or scanner runs over
contiguous positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# A fragment at least this long, starting off the batch grid, gets scanners of its own
# (two, under a millisecond each) rather than re-cut batches (a copy of each batch).
REALIGN_ROWS = 16384


@dataclass(frozen=True)
class ScanRun:
    """One scanner call: these fragments in this order, skipping `offset` universe rows."""

    fragment_ids: tuple[int, ...]
    offset: int
    limit: int


@dataclass(frozen=True)
class Mixture:
    """A universe made of several sources, in that order: the rows of each, its weight, and
    when an epoch ends (`first_exhausted` or `all_exhausted`)."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    weights: tuple[float, ...]
    stop: str = "first_exhausted"

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Universe:
    """The rows a recipe reads, fragment by fragment in dataset order.

    `row_ids` is None when ids follow from the layout (no filter, no deletions):
    then the id of position p is the row address `fragment_id << 32 | offset`.
    `offsets` marks sources read by plain offsets (tables without `to_lance`).
    `scannable` is False when a scanner over the fragments (with the recipe's filter)
    would not read exactly these rows (a split, a mixture): they are read by id.
    `mixture` describes a universe of several sources; `split_rows` counts the rows of
    each declared split (for the build's report).
    """

    fragment_ids: np.ndarray
    fragment_rows: np.ndarray
    row_ids: np.ndarray | None
    offsets: bool = False
    scannable: bool = True
    mixture: Mixture | None = None
    split_rows: tuple[tuple[str, int], ...] = ()

    @cached_property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.fragment_rows)[:-1]]).astype(np.int64)

    @property
    def size(self) -> int:
        return int(self.fragment_rows.sum())

    def ids(self, positions: np.ndarray) -> np.ndarray:
        if self.row_ids is not None:
            return self.row_ids[positions]
        if self.offsets:
            return positions.astype(np.int64, copy=False)
        # 'right' - 1 skips fragments with no universe rows (equal starts).
        idx = np.searchsorted(self.starts, positions, side="right") - 1
        return (self.fragment_ids[idx] << 32) | (positions - self.starts[idx])

    def runs(self, ranges: list[range], batch_size: int = 0) -> tuple[ScanRun, ...]:
        """Scanner calls for contiguous position ranges, merging whole fragments.

        A scanner ends a batch short at each fragment's end. Where that leaves
        the rows before a fragment off the `batch_size` grid and the fragment is
        long, it starts a run of its own rather than merging: the reader then
        reads the few rows that complete the batch apart, and every batch after
        them arrives whole. Merged, each would be re-cut from two scanner
        batches, a copy (30 ms of a 1M-row epoch's ~200, measured).
        """
        runs: list[ScanRun] = []
        open_to_next = False  # the last run ended exactly at its fragment's end
        before = 0  # rows of `ranges` before `pos`
        for rng in ranges:
            pos = rng.start
            while pos < rng.stop:
                i = int(np.searchsorted(self.starts, pos, side="right") - 1)
                start, rows = int(self.starts[i]), int(self.fragment_rows[i])
                offset = pos - start
                count = min(rng.stop, start + rows) - pos
                fid = int(self.fragment_ids[i])
                on_grid = batch_size <= 0 or before % batch_size == 0
                if open_to_next and offset == 0 and (on_grid or count < REALIGN_ROWS):
                    last = runs[-1]
                    runs[-1] = ScanRun((*last.fragment_ids, fid), last.offset, last.limit + count)
                else:
                    runs.append(ScanRun((fid,), offset, count))
                open_to_next = offset + count == rows
                pos += count
                before += count
        return tuple(runs)
