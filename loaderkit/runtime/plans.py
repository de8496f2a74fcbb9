"""Which rows this rank reads in an epoch, in which order, cut into chunk tasks.

Pure numpy and no I/O: the main process owns the order. A worker only ever sees
a task (the rows of one chunk, in delivery order) and never decides anything,
which is what makes the order independent of the worker count and lets a resume
skip straight to a position.

Terms: the *universe* is the rows the recipe reads (after `filter`), numbered by
*position* 0..n-1 in dataset order. A rank's *order* for an epoch is a list of
segments of positions (a `range` for contiguous runs, an int64 array otherwise).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from loaderkit.runtime.spec import SamplerSpec

Segment = range | np.ndarray

# Chunk sizes when `SamplerSpec.chunk_rows` is unset: larger chunks mix blocks better
# (block) and make a scattered take cheaper per row (exact), at the cost of memory;
# full_scan and the sharded samplers read 65,536 rows per call.
DEFAULT_CHUNK_ROWS = 65536
BLOCK_CHUNK_ROWS = 131072
EXACT_CHUNK_BYTES = 128 * 2**20
CACHE_CHUNK_ROWS = 16384
EXACT_CHUNK_ROWS = (65536, 1 << 20)  # bounds of the byte-sized exact chunk
# A fragment at least this long, starting off the batch grid, gets scanners of its own
# (two, under a millisecond each) rather than re-cut batches (a copy of each batch).
REALIGN_ROWS = 16384


def default_chunk_rows(sampler: SamplerSpec, row_bytes: int) -> int:
    """The chunk size a plan uses: `sampler.chunk_rows`, or a mode-aware one if it is unset.

    Deterministic from the recipe and the selected columns' fixed widths, so a
    resume under the same recipe plans the same chunks.
    """
    if sampler.chunk_rows is not None:
        return sampler.chunk_rows
    if sampler.type != "shuffle":
        return DEFAULT_CHUNK_ROWS
    if sampler.mode == "block":
        return BLOCK_CHUNK_ROWS
    if sampler.mode == "exact":
        if row_bytes <= 0:  # only variable-width columns: no byte estimate
            return 4 * DEFAULT_CHUNK_ROWS
        lo, hi = EXACT_CHUNK_ROWS
        return min(hi, max(lo, EXACT_CHUNK_BYTES // row_bytes))
    # cache: a chunk is one in-memory gather. Kept well under glibc's 32 MB mmap
    # threshold, its buffer is recycled from the heap instead of page-faulted in.
    return CACHE_CHUNK_ROWS


@dataclass(frozen=True)
class ScanRun:
    """One scanner call: these fragments in this order, skipping `offset` universe rows."""

    fragment_ids: tuple[int, ...]
    offset: int
    limit: int


@dataclass(frozen=True)
class ScanTask:
    """Contiguous universe rows, read with scanners (full_scan, sharded_fragment)."""

    runs: tuple[ScanRun, ...]
    rows: int


@dataclass(frozen=True, eq=False)
class TakeTask:
    """Scattered rows: `ids` are row ids/addresses in delivery order (one sorted take)."""

    ids: np.ndarray


@dataclass(frozen=True, eq=False)
class CacheTask:
    """Rows of the in-memory cache (shuffle `cache` mode): universe positions, delivery order."""

    positions: np.ndarray


@dataclass(frozen=True)
class StandbyTask:
    """No rows: what a worker is sent first while the main process is still reading.

    DataLoader hands each worker its first tasks the moment it starts them, long
    before they can read (seconds of imports); these fill those places, so the
    rows stay with the main process until the workers are up.
    """


Task = ScanTask | TakeTask | CacheTask | StandbyTask


@dataclass(frozen=True, eq=False)
class Universe:
    """The rows a recipe reads, fragment by fragment in dataset order.

    `row_ids` is None when ids follow from the layout (no filter, no deletions):
    then the id of position p is the row address `fragment_id << 32 | offset`.
    `offsets` marks sources read by plain offsets (tables without `to_lance`).
    """

    fragment_ids: np.ndarray
    fragment_rows: np.ndarray
    row_ids: np.ndarray | None
    offsets: bool = False

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


@dataclass
class _Order:
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


def _slice(segments: Sequence[Segment], a: int, b: int) -> list[Segment]:
    return _Order(segments).slice(a, b)


def _positions(segments: list[Segment]) -> np.ndarray:
    """The segments' positions as one array: a view when there is a single array."""
    parts = [
        np.arange(s.start, s.stop, dtype=np.int64) if isinstance(s, range) else s for s in segments
    ]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class ChunkPlan:
    """This rank's ordered chunk tasks for any epoch.

    Splitting across ranks (every row of an epoch reaches exactly one rank once):
    - `full_scan` / `shuffle`: the epoch's global order is cut into `world_size`
      contiguous slices; rank r gets slice r.
    - `sharded_batch`: batch i of dataset order (batch_size rows) goes to rank i % world_size.
    - `sharded_fragment`: fragment i goes to rank i % world_size, read whole, in order.

    Uneven row counts: with `drop_last`, every rank gets the same number of full
    batches (the epoch's tail is dropped: the global order is trimmed to a multiple of
    world_size * batch_size; for sharded_fragment each rank is trimmed to the
    smallest rank's full batches). Otherwise `uneven="allow"` lets ranks differ by
    the remainder (each rank's last batch may be partial), and `uneven="pad"` appends
    the epoch's first rows (cycling if needed) so every rank gets the same row
    count: to ceil(n / world_size) rows each, or for sharded_batch to a multiple of
    world_size * batch_size in total, or for sharded_fragment to the largest
    rank's rows. Padded rows are delivered twice in that epoch, by design.
    """

    def __init__(
        self,
        sampler: SamplerSpec,
        universe: Universe,
        batch_size: int,
        drop_last: bool,
        row_bytes: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 0 <= sampler.rank < sampler.world_size:
            raise ValueError(f"rank {sampler.rank} is not in [0, {sampler.world_size})")
        self.sampler = sampler
        self.universe = universe
        self.batch_size = batch_size
        self.drop_last = drop_last
        # A multiple of batch_size so batches never straddle chunks.
        # `row_bytes` (fixed-width bytes per selected row) sizes default exact chunks.
        rows = default_chunk_rows(sampler, row_bytes)
        self.chunk_rows = max(batch_size, rows // batch_size * batch_size)
        self._memo: tuple[int, _Order] | None = None

    # ---- the rank's order -------------------------------------------------

    def order(self, epoch: int) -> _Order:
        if self._memo is None or self._memo[0] != epoch:
            self._memo = (epoch, _Order(self._rank_segments(epoch)))
        return self._memo[1]

    def rows(self, epoch: int = 0) -> int:
        return len(self.order(epoch))

    def batches(self, epoch: int = 0) -> int:
        return math.ceil(self.rows(epoch) / self.batch_size)

    def _rank_segments(self, epoch: int) -> list[Segment]:
        kind = self.sampler.type
        if kind == "sharded_fragment":
            return self._fragment_segments()
        if kind == "sharded_batch":
            return self._batch_segments()
        glob: list[Segment] = (
            [range(self.universe.size)] if kind == "full_scan" else [self._shuffled(epoch)]
        )
        return self._contiguous_share(glob)

    def _wrap(self, glob: list[Segment], count: int) -> list[Segment]:
        """The first `count` rows of the epoch's global order, cycling when count > n."""
        n = self.universe.size
        if count <= 0 or n == 0:
            return []
        out: list[Segment] = []
        while count > 0:
            out += _slice(glob, 0, min(count, n))
            count -= n
        return out

    def _contiguous_share(self, glob: list[Segment]) -> list[Segment]:
        n, bs = self.universe.size, self.batch_size
        ws, r = self.sampler.world_size, self.sampler.rank
        if self.drop_last:
            per = n // (ws * bs) * bs
            return _slice(glob, r * per, (r + 1) * per)
        if self.sampler.uneven == "pad":
            per = math.ceil(n / ws)
            padded = glob + self._wrap(glob, per * ws - n)
            return _slice(padded, r * per, (r + 1) * per)
        q, rem = divmod(n, ws)
        start = r * q + min(r, rem)
        return _slice(glob, start, start + q + (1 if r < rem else 0))

    def _batch_segments(self) -> list[Segment]:
        n, bs = self.universe.size, self.batch_size
        ws, r = self.sampler.world_size, self.sampler.rank
        glob: list[Segment] = [range(n)]
        if self.drop_last:
            total = n // (ws * bs) * ws * bs
        elif self.sampler.uneven == "pad":
            total = math.ceil(n / (ws * bs)) * ws * bs
            glob = glob + self._wrap(glob, total - n)
        else:
            total = n
        order = _Order(glob)
        out: list[Segment] = []
        for k in range(r, math.ceil(total / bs), ws):
            out += order.slice(k * bs, min((k + 1) * bs, total))
        return out

    def _fragment_segments(self) -> list[Segment]:
        u, ws, r, bs = self.universe, self.sampler.world_size, self.sampler.rank, self.batch_size
        mine: list[Segment] = [
            range(int(u.starts[i]), int(u.starts[i] + u.fragment_rows[i]))
            for i in range(r, len(u.fragment_ids), ws)
            if u.fragment_rows[i] > 0
        ]
        per_rank = [int(u.fragment_rows[k::ws].sum()) for k in range(ws)]
        if self.drop_last:
            return _slice(mine, 0, min(per_rank) // bs * bs)
        if self.sampler.uneven == "pad":
            return mine + self._wrap([range(u.size)], max(per_rank) - per_rank[r])
        return mine

    def _rng(self, *keys: int) -> np.random.Generator:
        # SeedSequence mixes the whole key, so (seed, epoch) pairs never collide.
        return np.random.default_rng([self.sampler.seed % 2**64, *keys])

    def _shuffled(self, epoch: int) -> np.ndarray:
        n, rng = self.universe.size, self._rng(epoch)
        if self.sampler.mode != "block":
            return rng.permutation(n).astype(np.int64, copy=False)
        # Random order of contiguous blocks: neighbours on disk stay neighbours, so
        # each chunk's sorted take reads runs instead of single rows.
        b = max(1, self.sampler.block_rows)
        starts = rng.permutation(math.ceil(n / b)).astype(np.int64) * b
        lengths = np.minimum(b, n - starts)
        before = np.cumsum(lengths) - lengths
        offsets = np.arange(n, dtype=np.int64) - np.repeat(before, lengths)
        return offsets + np.repeat(starts, lengths)

    # ---- tasks ------------------------------------------------------------

    def boundaries(self, epoch: int) -> list[int]:
        """Row offsets where chunks start, plus the end.

        The first chunk is one batch, so the first batch of an epoch costs one
        small read instead of a whole chunk.
        """
        total = self.rows(epoch)
        cuts = [0, *range(min(self.batch_size, total), total, self.chunk_rows)]
        return [*cuts, total] if total else [0]

    def scan_runs(self, epoch: int, skip_batches: int = 0) -> tuple[ScanRun, ...] | None:
        """The rest of `epoch` as scanner runs where its order is contiguous rows
        (full_scan, sharded_fragment), else None: what `tasks` cuts into ScanTasks."""
        if self.sampler.type not in ("full_scan", "sharded_fragment"):
            return None
        order = self.order(epoch)
        ranges = order.slice(skip_batches * self.batch_size, len(order))
        assert all(isinstance(s, range) for s in ranges)
        return self.universe.runs(ranges, self.batch_size)  # type: ignore[arg-type]

    def tasks(self, epoch: int, skip_batches: int = 0) -> Iterator[Task]:
        """This rank's tasks for `epoch`, without the first `skip_batches` batches."""
        order = self.order(epoch)
        skip_rows = skip_batches * self.batch_size
        cuts = self.boundaries(epoch)
        kind, mode = self.sampler.type, self.sampler.mode
        for index, (a, b) in enumerate(itertools.pairwise(cuts)):
            if b <= skip_rows:
                continue
            lead = max(0, skip_rows - a)
            if kind in ("full_scan", "sharded_fragment"):
                ranges = order.slice(a + lead, b)
                assert all(isinstance(s, range) for s in ranges)
                runs = self.universe.runs(ranges, self.batch_size)  # type: ignore[arg-type]
                yield ScanTask(runs, b - a - lead)
                continue
            if kind == "shuffle" and mode == "block":
                # Blocks alone would deliver block_rows-row runs; mixing inside the
                # chunk breaks them up at no I/O cost. Done before trimming, so a
                # resumed chunk has the same order as the uninterrupted one. The
                # one-batch first chunk is mixed together with the next chunk (else
                # it would be a single block: rows 1..1024 of one spot on disk).
                ga, gb = (cuts[0], cuts[min(2, len(cuts) - 1)]) if index < 2 else (a, b)
                key = 0 if index < 2 else index
                positions = _positions(order.slice(ga, gb))
                mix = self._rng(epoch, self.sampler.rank, key).permutation(len(positions))
                positions = positions[mix][a - ga : b - ga]
            else:
                positions = _positions(order.slice(a, b))
            positions = positions[lead:]
            if kind == "shuffle" and mode == "cache":
                yield CacheTask(positions)
            else:
                yield TakeTask(self.universe.ids(positions))
