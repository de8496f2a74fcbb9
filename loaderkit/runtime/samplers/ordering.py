"""Orders as lists of segments, and the ranges of an epoch still to deliver.

A segment is a `range` (contiguous positions) or an int64 array; an order is a
list of segments, sliced in O(log segments). `Ranges` are [start, stop) pieces of
an epoch's global order, in order: a fresh epoch is one range, a resumed one what
no rank has delivered yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Segment = range | np.ndarray
Ranges = tuple[tuple[int, int], ...]


@dataclass
class Order:
    """An order with O(log segments) slicing."""

    segments: Sequence[Segment]
    ends: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.ends = np.cumsum([len(s) for s in self.segments], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def slice(self, a: int, b: int) -> list[Segment]:
        out: list[Segment] = []
        i = int(np.searchsorted(self.ends, a, side="right"))
        while i < len(self.segments) and a < b:
            begin = int(self.ends[i]) - len(self.segments[i])
            part = self.segments[i][a - begin : min(b, int(self.ends[i])) - begin]
            out.append(part)
            a += len(part)
            i += 1
        return out


def cut(segments: Sequence[Segment], a: int, b: int) -> list[Segment]:
    return Order(segments).slice(a, b)


def positions(segments: list[Segment]) -> np.ndarray:
    """The segments' positions as one array: a view when there is a single array."""
    parts = [
        np.arange(s.start, s.stop, dtype=np.int64) if isinstance(s, range) else s for s in segments
    ]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def wrap(glob: list[Segment], n: int, count: int) -> list[Segment]:
    """The first `count` rows of an `n`-row order, cycling when count > n (padding)."""
    if count <= 0 or n == 0:
        return []
    out: list[Segment] = []
    while count > 0:
        out += cut(glob, 0, min(count, n))
        count -= n
    return out


def total(ranges: Ranges) -> int:
    return sum(b - a for a, b in ranges)


def locate(ranges: Ranges, rows: np.ndarray) -> np.ndarray:
    """The global index of each of `rows`, counted along `ranges` (0 = the first row)."""
    starts = np.array([a for a, _ in ranges], dtype=np.int64)
    ends = np.cumsum([b - a for a, b in ranges], dtype=np.int64)
    which = np.searchsorted(ends, rows, side="right")
    before = np.concatenate([[0], ends[:-1]])[which]
    return starts[which] + (rows - before)


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


def after(ranges: Ranges, rows: int) -> Ranges:
    """`ranges` without their first `rows` rows."""
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        skip = min(rows, b - a)
        rows -= skip
        if a + skip < b:
            out.append((a + skip, b))
    return tuple(out)
