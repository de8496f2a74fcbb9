"""The pieces of an epoch's global order: its chunks, and the ranges still to deliver.

`Ranges` are [start, stop) pieces of an epoch's global order, in order: a fresh
epoch is one range, a resumed one what no rank has delivered yet. `ChunkGrid`
cuts the global order into chunks, the unit a task reads and a block shuffle
mixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Ranges = tuple[tuple[int, int], ...]

# The first chunk of an epoch: chunks then double up to their steady size, so the
# first batches wait on a small read and the reads that follow are already in flight.
FIRST_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class ChunkGrid:
    """Chunk boundaries in the global order: a `first` chunk, then chunks that double up
    to `size` rows (or, without `doubling`, go straight to it).

    A block shuffle's grid depends on neither the world size nor the batch size, so chunk
    k (and how it is mixed) is the same at every world size. Exact's starts with one
    global step (batch size x world size): its order is per row, so where the chunks
    fall changes how rows are read, never which batch holds them.
    """

    size: int
    first: int = FIRST_CHUNK_ROWS
    doubling: bool = True

    @property
    def _ramp(self) -> tuple[int, int]:
        """(the first chunk's rows, how many chunks come before the steady size)."""
        first = max(1, min(self.first, self.size))
        if first == self.size:
            return first, 0
        if not self.doubling:
            return first, 1
        chunks = 0
        while first << chunks < self.size:
            chunks += 1
        return first, chunks

    def start(self, index: int) -> int:
        """Where chunk `index` starts."""
        first, chunks = self._ramp
        if index <= chunks:
            return first * ((1 << index) - 1) if self.doubling else first * min(index, 1)
        return self.start(chunks) + (index - chunks) * self.size

    def index(self, rows: np.ndarray) -> np.ndarray:
        """The chunk of each global index in `rows`."""
        first, chunks = self._ramp
        rows = np.asarray(rows, dtype=np.int64)
        ramp = self.start(chunks)
        if self.doubling:
            # Chunk i of the ramp holds [first * (2**i - 1), first * (2**(i+1) - 1)).
            growing = np.floor(np.log2(np.maximum(rows, 0) // first + 1)).astype(np.int64)
        else:
            growing = np.zeros(len(rows), dtype=np.int64)
        return np.where(rows < ramp, growing, chunks + (rows - ramp) // self.size)


def positions(segments: list[range]) -> np.ndarray:
    """The ranges' positions, in order, as one array."""
    parts = [np.arange(s.start, s.stop, dtype=np.int64) for s in segments]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def total(ranges: Ranges) -> int:
    return sum(b - a for a, b in ranges)


def locate(ranges: Ranges, rows: np.ndarray) -> np.ndarray:
    """The global index of each of `rows`, counted along `ranges` (0 = the first row)."""
    starts = np.array([a for a, _ in ranges], dtype=np.int64)
    ends = np.cumsum([b - a for a, b in ranges], dtype=np.int64)
    which = np.searchsorted(ends, rows, side="right")
    before = np.concatenate([[0], ends[:-1]])[which]
    return starts[which] + (rows - before)


def before(ranges: Ranges, index: int) -> int:
    """How many rows of `ranges` have a global index below `index`."""
    return sum(min(max(index - a, 0), b - a) for a, b in ranges)


def along(ranges: Ranges, x: int, y: int) -> list[tuple[int, int]]:
    """Rows [x, y) counted along `ranges`, as global ranges."""
    out, before = [], 0
    for a, b in ranges:
        lo, hi = max(x, before), min(y, before + b - a)
        if lo < hi:
            out.append((a + lo - before, a + hi - before))
        before += b - a
    return out


def drop(ranges: Ranges, pieces: list[tuple[int, int]]) -> Ranges:
    """`ranges` without the rows of `pieces` (row ranges along `ranges`, as `locate` counts
    them), as global ranges, merged where they touch."""
    out: list[tuple[int, int]] = []
    at = 0
    for a, b in [*sorted(pieces), (total(ranges), total(ranges))]:
        for piece in along(ranges, at, a) if a > at else ():
            if out and out[-1][1] == piece[0]:
                out[-1] = (out[-1][0], piece[1])
            else:
                out.append(piece)
        at = max(at, b)
    return tuple(out)
