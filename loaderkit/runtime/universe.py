"""The universe: the rows a recipe reads, fragment by fragment, numbered by position.

Positions 0..n-1 follow dataset order after `filter` (and a split). A universe
turns positions into what a reader reads: row ids/addresses for a take, or
scanner runs over contiguous positions.

It stays small whatever the dataset's size: without a filter the rows follow from
the fragments' lengths (O(fragments)); a filter or a split keeps, per fragment,
all its rows or a bitmap of the ones it keeps (one bit per row, not eight bytes),
and a position is found in a bitmap through a count per 64-row word.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from loaderkit.runtime import rowids

# A fragment at least this long, starting off the batch grid, gets scanners of its own
# (two, under a millisecond each) rather than re-cut batches (a copy of each batch).
REALIGN_ROWS = 16384


@dataclass(frozen=True)
class ScanRun:
    """One scanner call: these fragments in this order, skipping `offset` universe rows."""

    fragment_ids: tuple[int, ...]
    offset: int
    limit: int


# Up to this many distinct fragments among a task's rows, one mask each finds theirs.
GROUP_BY_MASK = 16
# `Bitmap.select` lists every kept row of the words its ranks fall in when there are at
# most this many physical rows per rank; sparser, it searches each rank's bit.
DENSE_SELECT = 64


class Bitmap:
    """Which of a fragment's physical rows the universe keeps, one bit each, with the number
    of kept rows before each 64-row word so that `select` is two lookups and a bit search."""

    def __init__(self, keep: np.ndarray) -> None:
        """`keep`: a bool array, one per physical row of the fragment."""
        packed = np.packbits(keep, bitorder="little")
        packed = np.concatenate([packed, np.zeros(-len(packed) % 8, dtype=np.uint8)])
        self.words = packed.view("<u8")
        counts = np.bitwise_count(self.words).astype(np.int64)
        # A fragment holds under 2**32 rows: 4 bytes a word (half a bit a row) count them.
        self.before = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.uint32)

    @property
    def nbytes(self) -> int:
        return int(self.words.nbytes + self.before.nbytes)

    def select(self, ranks: np.ndarray) -> np.ndarray:
        """The physical offset of the kept row of each rank (0 = the first kept row)."""
        if len(ranks) == 0:
            return np.zeros(0, dtype=np.int64)
        ranks = np.asarray(ranks, dtype=np.int64)
        # Same dtype as `before`, or searchsorted converts all of `before` per call.
        lo, hi = np.searchsorted(self.before, np.array([ranks.min(), ranks.max()],
                                                       dtype=np.uint32), side="right") - 1
        if (hi - lo + 1) * 64 <= DENSE_SELECT * len(ranks):
            # Many ranks in few words (a task's rows): list the kept rows of those words
            # once and index them, ~50x the bit search per rank.
            bits = np.unpackbits(self.words[lo:hi + 1].view(np.uint8), bitorder="little")
            kept = bits.view(np.bool_).nonzero()[0]  # 0/1 bytes: 8x flatnonzero's speed
            return kept[ranks - int(self.before[lo])] + int(lo) * 64
        word = np.searchsorted(self.before, ranks.astype(np.uint32), side="right") - 1
        bits = self.words[word]
        left = (ranks - self.before[word].astype(np.int64)).astype(np.uint64)  # bits to pass
        offset = np.zeros(len(ranks), dtype=np.uint64)
        for width in (32, 16, 8, 4, 2, 1):  # binary search for the bit in each word
            low = bits & np.uint64((1 << width) - 1)
            below = np.bitwise_count(low).astype(np.uint64)
            beyond = below <= left  # the wanted bit is in the upper half
            offset[beyond] += np.uint64(width)
            left[beyond] -= below[beyond]
            bits = np.where(beyond, bits >> np.uint64(width), low)
        return word.astype(np.int64) * 64 + offset.astype(np.int64)


def _groups(keys: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(key, where it is in `keys`) for each distinct key: a mask per key while they are
    few, one stable sort once they are many (a mask each is keys x len(keys) work)."""
    distinct = np.unique(keys)
    if len(distinct) <= GROUP_BY_MASK:
        for key in distinct:
            yield int(key), keys == key
        return
    order = np.argsort(keys, kind="stable")
    cuts = np.flatnonzero(np.diff(keys[order])) + 1
    for part in np.split(order, cuts):
        yield int(keys[part[0]]), part


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
    then the id of position p is the row address of its fragment and offset (rowids.py).
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
    # Per fragment, the rows kept of its physical rows; None: all of them.
    kept: tuple[Bitmap | None, ...] | None = None
    # A mixture's sources, each a universe (ids carry the source in their top bits).
    parts: tuple[Universe, ...] = ()

    @cached_property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.fragment_rows)[:-1]]).astype(np.int64)

    @property
    def size(self) -> int:
        return int(self.fragment_rows.sum())

    @property
    def nbytes(self) -> int:
        """What the universe holds in memory (the plan's memory: kept rows, ids)."""
        own = sum(b.nbytes for b in self.kept or () if b is not None)
        own += self.row_ids.nbytes if self.row_ids is not None else 0
        return int(own + sum(p.nbytes for p in self.parts) + self.fragment_rows.nbytes * 2)

    def ids(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        if self.parts:
            return self._part_ids(positions)
        if self.row_ids is not None:
            return self.row_ids[positions]
        if self.offsets:
            return positions
        # 'right' - 1 skips fragments with no universe rows (equal starts).
        idx = np.searchsorted(self.starts, positions, side="right") - 1
        local = positions - self.starts[idx]
        if self.kept is not None:
            for fragment, here in _groups(idx):
                bitmap = self.kept[fragment]
                if bitmap is not None:
                    local[here] = bitmap.select(local[here])
        return rowids.address(self.fragment_ids[idx], local)

    def _part_ids(self, positions: np.ndarray) -> np.ndarray:
        part = np.searchsorted(self.starts, positions, side="right") - 1
        out = np.empty(len(positions), dtype=np.int64)
        for index in np.unique(part):
            here = part == index
            local = positions[here] - self.starts[index]
            out[here] = rowids.mixed(int(index), self.parts[index].ids(local))
        return out

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
