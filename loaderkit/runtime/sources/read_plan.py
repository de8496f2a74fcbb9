"""Planning a take of a Lance dataset: sorted row addresses -> the range reads that cover
them, and those reads grouped into pieces read in parallel (lance_reader.py reads them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from loaderkit.runtime import rowids

# Mean run length (rows) from which `LanceReader.take` reads a fragment's data file
# (ranges and per-fragment takes) instead of one dataset take: a dataset take of
# 128-row runs read ~1.0M rows/s here, per-fragment takes ~1.6M, in 3 threads.
MIN_RANGE_ROWS = 32
# A dense run at least this long is one `read_range` (~0.5 ms a call, whatever its
# length up to ~1,000 rows); shorter ones go into a take of their fragment's rows.
RANGE_READ_ROWS = 512
# Wanted rows of one fragment's sparse runs read by one take_rows: big enough that
# a call's fixed cost is small, small enough that a chunk's pieces are read in
# parallel and copied out as they arrive.
TAKE_PIECE_ROWS = 16384
# Rows between two wanted rows that a range read may read and drop rather than split.
RANGE_GAP = 64


@dataclasses.dataclass(frozen=True)
class Range:
    """One range read: `rows` rows of `fragment` from `offset`, of which `keep` (all if None)."""

    fragment: Any
    offset: int
    rows: int
    keep: np.ndarray | None

    @property
    def wanted(self) -> int:
        return self.rows if self.keep is None else len(self.keep)

    @property
    def dense(self) -> bool:
        """Long, and at least half the rows wanted: read them all and drop the rest."""
        return self.rows >= RANGE_READ_ROWS and 2 * self.wanted >= self.rows

    def offsets(self) -> np.ndarray:
        """The wanted rows' offsets in the fragment."""
        if self.keep is None:
            return np.arange(self.offset, self.offset + self.rows, dtype=np.int64)
        return self.offset + self.keep.astype(np.int64, copy=False)


def ranges(ids: np.ndarray, fragments: dict[int, Any], stable_row_ids: bool
           ) -> list[Range] | None:
    """The range reads that cover `ids` (sorted row addresses of the dataset whose
    fragments, by id, are `fragments`), or None to use take.

    Rows less than RANGE_GAP apart share a read (the rows between are dropped),
    so a block-shuffle chunk that lent a few rows to the first batch is still
    read as whole blocks. Only when the reads average >= MIN_RANGE_ROWS of
    `ids` and ids are row addresses whose offsets are scan offsets: no stable
    row ids, no deletions in those fragments.
    """
    if len(ids) < MIN_RANGE_ROWS or stable_row_ids:
        return None
    # A fragment change is a jump of ~2**FRAGMENT_SHIFT in the address: always a cut.
    cuts = np.flatnonzero(np.diff(ids) > RANGE_GAP) + 1
    if len(ids) < MIN_RANGE_ROWS * (len(cuts) + 1):
        return None
    starts = np.concatenate([[0], cuts]).tolist()
    ends = [*starts[1:], len(ids)]
    out: list[Range] = []
    for start, end in zip(starts, ends, strict=True):
        first, last = int(ids[start]), int(ids[end - 1])
        frag = fragments.get(rowids.fragment_of(first))
        if frag is None or frag.metadata.deletion_file is not None:
            return None
        span = last - first + 1
        keep = None if span == end - start else ids[start:end] - first
        out.append(Range(frag, rowids.offset_of(first), span, keep))
    return out


def pieces(runs: list[Range]) -> Iterator[list[Range]]:
    """The reads for `runs`: a dense run alone; other runs of one fragment (short or
    sparse) together, about TAKE_PIECE_ROWS wanted rows a piece."""
    piece: list[Range] = []
    rows = 0
    for run in runs:
        if piece and (run.dense or run.fragment is not piece[0].fragment
                      or rows >= TAKE_PIECE_ROWS):
            yield piece
            piece, rows = [], 0
        if run.dense:
            yield [run]
            continue
        piece.append(run)
        rows += run.wanted
    if piece:
        yield piece
