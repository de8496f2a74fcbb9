"""The sampler contracts: `Sampler`, and the two families a sampler type subclasses,
`GlobalSampler` (one order of the epoch, whose batches the ranks take in turn;
`ScanGlobalSampler` for dataset order) and `RankSampler` (an order of each rank's own).
Defining a subclass with a `name` registers it in `SAMPLERS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from loaderkit.errors import SamplerError
from loaderkit.runtime.samplers import dealing, mixing
from loaderkit.runtime.samplers.dealing import Deal
from loaderkit.runtime.samplers.ordering import (
    ChunkGrid,
    Ranges,
    along,
    before,
    locate,
    positions,
    total,
)
from loaderkit.runtime.spec import SamplerSpec
from loaderkit.runtime.tasks import ScanTask, TakeTask, Task
from loaderkit.runtime.universe import ScanRun, Universe

# Rows per chunk when `SamplerSpec.chunk_rows` is unset and the sampler has no size of
# its own: one Lance call reads this many.
DEFAULT_CHUNK_ROWS = 65536
# The random stream of a mixture's interleave (its phases), apart from every source's.
MIXTURE_STREAM = 1 << 20

SAMPLERS: dict[str, type[Sampler]] = {}


class Sampler:
    """What every sampler answers for the loader, for an epoch and the ranges still to go."""

    name: ClassVar[str]
    # Whether a state resumes at another world size, rank count or batch size.
    elastic: ClassVar[bool] = True

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "name" in cls.__dict__:
            SAMPLERS[cls.name] = cls

    @classmethod
    def create(cls, spec: SamplerSpec, universe: Universe, batch_size: int, drop_last: bool,
               row_bytes: int = 0) -> Sampler:
        """The sampler for `spec` (a subclass may pick a variant, e.g. by shuffle mode)."""
        return cls(spec, universe, batch_size, drop_last, row_bytes)

    def __init__(self, spec: SamplerSpec, universe: Universe, batch_size: int,
                 drop_last: bool, row_bytes: int = 0) -> None:
        if batch_size < 1:
            raise SamplerError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= spec.rank < spec.world_size:
            raise SamplerError(f"rank {spec.rank} is not in [0, {spec.world_size})")
        self.spec = spec
        self.universe = universe
        self.batch_size = batch_size
        self.drop_last = drop_last
        rows = spec.chunk_rows if spec.chunk_rows is not None else self.chunk_rows_for(row_bytes)
        self.chunk_rows = max(1, rows)

    def chunk_rows_for(self, row_bytes: int) -> int:
        """Rows per chunk when the recipe leaves `chunk_rows` unset (`row_bytes`: fixed-width
        bytes per selected row, for samplers that size chunks by bytes)."""
        return DEFAULT_CHUNK_ROWS

    def rng(self, *keys: int) -> np.random.Generator:
        # SeedSequence mixes the whole key, so (seed, epoch) pairs never collide.
        return np.random.default_rng([self.spec.seed % 2**64, *keys])

    # ---- what the loader asks ------------------------------------------------------

    def epoch_ranges(self, epoch: int) -> Ranges:
        """A whole epoch: its order from the start."""
        return ((0, self.epoch_rows(epoch)),) if self.epoch_rows(epoch) else ()

    def epoch_rows(self, epoch: int) -> int:
        raise NotImplementedError

    def rows(self, epoch: int = 0, remaining: Ranges | None = None) -> int:
        """Rows this rank reads of `remaining` (the whole epoch by default)."""
        raise NotImplementedError

    def batches(self, epoch: int = 0, remaining: Ranges | None = None) -> int:
        raise NotImplementedError

    def consumed(self, epoch: int, remaining: Ranges, steps: int, batch_size: int,
                 world_size: int) -> int:
        """Rows along `remaining` that `steps` steps of every rank delivered when the rows
        were dealt at `batch_size` x `world_size` (a saved state's: what a resume skips)."""
        raise NotImplementedError

    def tasks(self, epoch: int, remaining: Ranges | None = None, per_batch: bool = False
              ) -> Iterator[Task]:
        """This rank's tasks for `remaining` of `epoch`, in order. `per_batch`: one task per
        batch, for recipes whose rows cost CPU (decoding, a transform) or hold large
        payloads: workers then share the work evenly and hold only what they prefetch."""
        raise NotImplementedError

    def scan_runs(self, epoch: int, remaining: Ranges | None = None
                  ) -> tuple[ScanRun, ...] | None:
        """This rank's part as scanner runs, where it is contiguous rows read with a scanner
        (the loader then streams it with 0 workers); else None."""
        return None


class GlobalSampler(Sampler):
    """One global order per epoch, computed lazily; ranks take its batches in turn.

    Subclasses give `order_slice` (their order of n rows, key (epoch, stream...),
    rows a..b) and may mix each chunk of the global order (`mixes_chunks`).
    """

    # Shuffle a chunk's rows among themselves (block mode), keeping a mixture's interleave.
    mixes_chunks: ClassVar[bool] = False

    def __init__(self, spec: SamplerSpec, universe: Universe, batch_size: int,
                 drop_last: bool, row_bytes: int = 0) -> None:
        super().__init__(spec, universe, batch_size, drop_last, row_bytes)
        self.grid = self.chunk_grid()
        self._chunks: dict[tuple[int, int], np.ndarray] = {}
        self._interleaves: dict[int, mixing.Interleave] = {}

    def chunk_grid(self) -> ChunkGrid:
        """How the global order is cut into chunks: small ones first (a fast first batch, and
        the next reads in flight early), doubling up to `chunk_rows`."""
        return ChunkGrid(self.chunk_rows)

    # ---- the global order ------------------------------------------------------------

    def order_slice(self, n: int, key: tuple[int, ...], a: int, b: int) -> np.ndarray:
        """Rows a..b of this sampler's order of positions 0 .. n-1 (keyed: epoch, stream)."""
        return np.arange(a, b, dtype=np.int64)

    def _interleave(self, epoch: int) -> mixing.Interleave | None:
        mixture = self.universe.mixture
        if mixture is None:
            return None
        if epoch not in self._interleaves:
            phase = self.rng(epoch, MIXTURE_STREAM).random(len(mixture.sizes))
            self._interleaves = {epoch: mixing.Interleave(mixture, phase)}
        return self._interleaves[epoch]

    def natural_rows(self, epoch: int) -> int:
        interleave = self._interleave(epoch)
        return interleave.total if interleave is not None else self.universe.size

    def epoch_rows(self, epoch: int) -> int:
        rows = self.natural_rows(epoch)
        return rows if self.spec.limit is None else min(rows, self.spec.limit)

    def _base_slice(self, epoch: int, a: int, b: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows a..b of the epoch's order before chunks are mixed, and in a mixture each
        row's pass (mixing.Interleave.slice_with_passes), which mixing keeps apart."""
        interleave = self._interleave(epoch)
        if interleave is None:
            return self.order_slice(self.universe.size, (epoch,), a, b), None
        return interleave.slice_with_passes(
            a, b, lambda source, cycle, lo, hi: self.order_slice(
                interleave.mixture.sizes[source], (epoch, source, cycle), lo, hi))

    def _chunk(self, epoch: int, index: int) -> np.ndarray:
        """Chunk `index` of the global order (`grid`), mixed if the sampler mixes."""
        key = (epoch, index)
        if key not in self._chunks:
            a = self.grid.start(index)
            b = min(self.grid.start(index + 1), self.natural_rows(epoch))
            rows, passes = self._base_slice(epoch, a, b)
            if self.mixes_chunks:
                rows = mixing.mix(rows, passes, self.rng(epoch, index))
            self._chunks = {k: v for k, v in self._chunks.items() if k[0] == epoch
                            and abs(k[1] - index) <= 2}  # a task's window, not the epoch
            self._chunks[key] = rows
        return self._chunks[key]

    def global_at(self, epoch: int, index: np.ndarray) -> np.ndarray:
        """Universe positions at global indices `index` (any, in any order)."""
        if not self.mixes_chunks and self.universe.mixture is None:
            return self.order_at(self.universe.size, (epoch,), index)
        out = np.empty(len(index), dtype=np.int64)
        chunk = self.grid.index(index)
        for c in np.unique(chunk):
            here = chunk == c
            out[here] = self._chunk(epoch, int(c))[index[here] - self.grid.start(int(c))]
        return out

    def order_at(self, n: int, key: tuple[int, ...], index: np.ndarray) -> np.ndarray:
        """`order_slice`, at any indices: samplers with a random-access order override it."""
        lo, hi = int(index.min(initial=0)), int(index.max(initial=-1)) + 1
        return self.order_slice(n, key, lo, hi)[index - lo]

    # ---- ranks take batches in turn --------------------------------------------------

    def deal(self, remaining: Ranges) -> Deal:
        """How the rows along `remaining` are cut into batches and dealt to the ranks."""
        return dealing.deal(total(remaining), self.batch_size, self.spec.world_size,
                            self.drop_last, self.spec.uneven)

    def _mine(self, remaining: Ranges) -> range:
        """The indices (along `remaining`) of this rank's batches."""
        return self.deal(remaining).mine(self.spec.rank)

    def batches(self, epoch: int = 0, remaining: Ranges | None = None) -> int:
        return len(self._mine(self.epoch_ranges(epoch) if remaining is None else remaining))

    def rows(self, epoch: int = 0, remaining: Ranges | None = None) -> int:
        remaining = self.epoch_ranges(epoch) if remaining is None else remaining
        return self.deal(remaining).rows_of(self.spec.rank)

    def consumed(self, epoch: int, remaining: Ranges, steps: int, batch_size: int,
                 world_size: int) -> int:
        return dealing.deal(total(remaining), batch_size, world_size, self.drop_last,
                            self.spec.uneven).steps_rows(steps)

    def _global_index(self, epoch: int, remaining: Ranges, rows: np.ndarray) -> np.ndarray:
        """Global order indices of `rows` counted along `remaining`; rows past its end are
        padding: the epoch's first rows again, cycling."""
        have = total(remaining)
        if len(remaining) == 1 and (len(rows) == 0 or rows[-1] < have):  # a fresh epoch
            return rows + remaining[0][0]
        out = np.empty(len(rows), dtype=np.int64)
        inside = rows < have
        if inside.any():
            out[inside] = locate(remaining, rows[inside])
        if (~inside).any():
            out[~inside] = (rows[~inside] - have) % max(1, self.epoch_rows(epoch))
        return out

    def _rows_of(self, epoch: int, remaining: Ranges, batches: range) -> np.ndarray:
        """Universe positions of this rank's batches `batches` (indices along `remaining`)."""
        deal, size = self.deal(remaining), self.batch_size
        whole = len(range(batches.start, min(batches.stop, deal.full), batches.step))
        parts = []
        if whole:  # (a batch_size far beyond the rows makes only a tail batch)
            starts = np.arange(whole, dtype=np.int64) * batches.step + batches.start
            parts.append((starts[:, None] * size + np.arange(size, dtype=np.int64)).ravel())
        parts += [np.arange(deal.start(j), deal.start(j + 1), dtype=np.int64)
                  for j in batches[whole:]]  # the tail's batches: a few per rank
        rows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return self.global_at(epoch, self._global_index(epoch, remaining, rows))

    def _groups(self, remaining: Ranges, per_batch: bool) -> Iterator[range]:
        """This rank's batches in tasks: those whose first row is in one chunk of the grid
        (this rank's share of the chunk), so that a task reads what one chunk holds and
        the small first chunks deliver the first batches quickly. A tail batch (its size
        is not `batch_size`) is a task of its own: a task's rows are cut into batches of
        `batch_size`."""
        deal = self.deal(remaining)
        mine = deal.mine(self.spec.rank)
        if per_batch:
            yield from (mine[i:i + 1] for i in range(len(mine)))
            return
        size, have, at = self.batch_size, total(remaining), 0
        while at < len(mine):
            if mine[at] >= deal.full:
                yield mine[at:at + 1]
                at += 1
                continue
            first = mine[at] * size
            if first >= have:  # padding: the epoch's first rows again
                yield mine[at:]
                return
            chunk = int(self.grid.index(locate(remaining, np.array([first])))[0])
            end = before(remaining, self.grid.start(chunk + 1))  # along `remaining`
            last = min(-(-end // size), deal.full) - 1  # the last whole batch in the chunk
            count = (last - mine[at]) // mine.step + 1
            yield mine[at:at + count]
            at += count

    def task_of(self, epoch: int, remaining: Ranges, batches: range) -> Task:
        """The task that reads `batches`: by default one sorted take of their rows."""
        return TakeTask(self.universe.ids(self._rows_of(epoch, remaining, batches)))

    def tasks(self, epoch: int, remaining: Ranges | None = None, per_batch: bool = False
              ) -> Iterator[Task]:
        remaining = self.epoch_ranges(epoch) if remaining is None else remaining
        for batches in self._groups(remaining, per_batch):
            yield self.task_of(epoch, remaining, batches)


class ScanGlobalSampler(GlobalSampler):
    """A global order of contiguous rows (dataset order): one rank over a universe a scanner
    reads exactly (no split, no mixture) reads its part with scanners."""

    @property
    def scans(self) -> bool:
        u = self.universe
        return u.scannable and u.mixture is None and self.spec.world_size == 1

    def order_at(self, n: int, key: tuple[int, ...], index: np.ndarray) -> np.ndarray:
        return index

    def _ranges(self, remaining: Ranges, batches: range) -> list[range]:
        deal = self.deal(remaining)  # one rank (`scans`): its batches are contiguous
        a, b = deal.start(batches[0]), deal.start(batches[-1] + 1)
        return [range(x, y) for x, y in along(remaining, a, b)]

    def task_of(self, epoch: int, remaining: Ranges, batches: range) -> Task:
        if not self.scans:
            return super().task_of(epoch, remaining, batches)
        ranges = self._ranges(remaining, batches)
        return ScanTask(self.universe.runs(ranges, self.batch_size))

    def scan_runs(self, epoch: int, remaining: Ranges | None = None
                  ) -> tuple[ScanRun, ...] | None:
        remaining = self.epoch_ranges(epoch) if remaining is None else remaining
        mine = self._mine(remaining)
        if not self.scans or not len(mine):
            return None if not self.scans else ()
        return self.universe.runs(self._ranges(remaining, mine), self.batch_size)


class RankSampler(Sampler):
    """A sampler whose order belongs to each rank (`rank_segments`): resumed by skipping the
    rank's own delivered rows, only at the same world size and batch size."""

    elastic = False
    # The last epoch's segments and their cumulative ends: fixed for the epoch, and asked
    # for by every task (a billion rows are ~10,000 fragments).
    _segments: tuple[int, list[range], np.ndarray] | None = None

    def rank_segments(self, epoch: int) -> list[range]:
        raise NotImplementedError

    def segments(self, epoch: int) -> tuple[list[range], np.ndarray]:
        """`rank_segments(epoch)` and where each ends along the rank's order."""
        if self._segments is None or self._segments[0] != epoch:
            found = self.rank_segments(epoch)
            self._segments = (epoch, found, np.cumsum([len(s) for s in found], dtype=np.int64))
        return self._segments[1], self._segments[2]

    def epoch_rows(self, epoch: int) -> int:
        _, ends = self.segments(epoch)
        return int(ends[-1]) if len(ends) else 0

    def rank_deal(self, epoch: int) -> Deal:
        """How this rank's epoch is cut into batches (its own order: one rank's deal)."""
        return dealing.deal(self.epoch_rows(epoch), self.batch_size, 1, False, "allow")

    def _offset(self, epoch: int, remaining: Ranges) -> int:
        """Where `remaining` starts along the rank's order: what is left is always its end."""
        return self.epoch_rows(epoch) - total(remaining)

    def rows(self, epoch: int = 0, remaining: Ranges | None = None) -> int:
        return total(self.epoch_ranges(epoch) if remaining is None else remaining)

    def batches(self, epoch: int = 0, remaining: Ranges | None = None) -> int:
        remaining = self.epoch_ranges(epoch) if remaining is None else remaining
        deal = self.rank_deal(epoch)
        return deal.count - deal.first_from(self._offset(epoch, remaining))

    def consumed(self, epoch: int, remaining: Ranges, steps: int, batch_size: int,
                 world_size: int) -> int:
        # The same world and batch size (a state of this sampler resumes only at those).
        deal, offset = self.rank_deal(epoch), self._offset(epoch, remaining)
        return deal.start(min(deal.first_from(offset) + steps, deal.count)) - offset

    def _cuts(self, deal: Deal, offset: int, per_batch: bool) -> Iterator[int]:
        """Where this rank's tasks begin and end along what is left (from `offset` in its
        order): its first batch alone, then whole batches a chunk at a time, then each tail
        batch alone (a task's rows are cut into batches of `batch_size`)."""
        size = self.batch_size
        step = size if per_batch else max(size, self.chunk_rows // size * size)
        yield 0
        whole = deal.full * size - offset
        if whole > 0:
            yield from range(min(size, whole), whole, step)
            yield whole
        for j in range(max(deal.first_from(offset), deal.full) + 1, deal.count + 1):
            yield deal.start(j) - offset

    def _order_ranges(self, epoch: int, remaining: Ranges) -> list[range]:
        """`remaining` (along the rank's order) as universe position ranges."""
        segments, ends = self.segments(epoch)
        out = []
        for a, b in remaining:
            i = int(np.searchsorted(ends, a, side="right"))  # the first segment ending after a
            while i < len(segments) and int(ends[i]) - len(segments[i]) < b:
                segment, begin = segments[i], int(ends[i]) - len(segments[i])
                lo, hi = max(a, begin), min(b, int(ends[i]))
                if lo < hi:
                    out.append(segment[lo - begin : hi - begin])
                i += 1
        return out

    def tasks(self, epoch: int, remaining: Ranges | None = None, per_batch: bool = False
              ) -> Iterator[Task]:
        remaining = self.epoch_ranges(epoch) if remaining is None else remaining
        size, cuts = self.batch_size, self._cuts(self.rank_deal(epoch),
                                                 self._offset(epoch, remaining), per_batch)
        for a, b in itertools.pairwise(cuts):
            ranges = self._order_ranges(epoch, tuple(along(remaining, a, b)))
            if self.universe.scannable:
                yield ScanTask(self.universe.runs(ranges, size))
            else:
                yield TakeTask(self.universe.ids(positions(list(ranges))))

    def scan_runs(self, epoch: int, remaining: Ranges | None = None
                  ) -> tuple[ScanRun, ...] | None:
        remaining = self.epoch_ranges(epoch) if remaining is None else remaining
        deal = self.rank_deal(epoch)
        tail = deal.count - max(deal.first_from(self._offset(epoch, remaining)), deal.full)
        if not self.universe.scannable or tail > 1:  # a stream cuts whole batches but the last
            return None
        return self.universe.runs(self._order_ranges(epoch, remaining), self.batch_size)
