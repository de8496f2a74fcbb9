"""A rank's epoch order as segments of universe positions, and how ranks share an order.

A segment is a `range` (contiguous positions) or an int64 array; an order is a
list of segments, sliced in O(log segments). The sharing rules (`contiguous_share`,
`wrap`) are the ones every sampler uses for `drop_last` and `uneven`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Segment = range | np.ndarray


@dataclass
class Order:
    """A rank's epoch order with O(log segments) slicing."""

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
    """The first `count` rows of an `n`-row global order, cycling when count > n (padding)."""
    if count <= 0 or n == 0:
        return []
    out: list[Segment] = []
    while count > 0:
        out += cut(glob, 0, min(count, n))
        count -= n
    return out


def contiguous_share(glob: list[Segment], n: int, batch_size: int, world_size: int, rank: int,
                     drop_last: bool, uneven: str) -> list[Segment]:
    """Rank `rank`'s slice when the epoch's global order is cut into `world_size` slices.

    With `drop_last` every rank gets the same number of full batches (the tail is
    dropped); else `uneven="allow"` lets ranks differ by the remainder and
    `uneven="pad"` repeats the epoch's first rows so every rank gets ceil(n / ws).
    """
    bs, ws, r = batch_size, world_size, rank
    if drop_last:
        per = n // (ws * bs) * bs
        return cut(glob, r * per, (r + 1) * per)
    if uneven == "pad":
        per = math.ceil(n / ws)
        padded = glob + wrap(glob, n, per * ws - n)
        return cut(padded, r * per, (r + 1) * per)
    q, rem = divmod(n, ws)
    start = r * q + min(r, rem)
    return cut(glob, start, start + q + (1 if r < rem else 0))
