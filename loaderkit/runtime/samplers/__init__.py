"""Samplers: one class per `sampler.type`, each in its own module of this package.

A sampler owns a rank's epoch: which universe positions it reads, in which order
(`rank_segments`), how many rows that is, and how the order is cut into chunk
tasks for the workers (`tasks`). Everything here is pure numpy and the main
process's alone, which is what makes the order independent of the worker count
and lets a resume skip straight to a position.

Each module defines one `Sampler` subclass with a `name` from
`vocabulary.SAMPLER_TYPES`; defining it registers it (docs/architecture.md).
"""

from __future__ import annotations

import importlib
import itertools
import math
import pkgutil
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from loaderkit.errors import SamplerError
from loaderkit.runtime.samplers import mixing
from loaderkit.runtime.samplers.ordering import Order, Segment, cut, positions
from loaderkit.runtime.spec import SamplerSpec
from loaderkit.runtime.tasks import CacheTask, ScanTask, TakeTask, Task
from loaderkit.runtime.universe import ScanRun, Universe

# Rows per chunk task when `SamplerSpec.chunk_rows` is unset and the sampler has no
# size of its own: one Lance call reads this many.
DEFAULT_CHUNK_ROWS = 65536
# The random stream of a mixture's interleave (its phases), apart from every source's.
MIXTURE_STREAM = 1 << 20

SAMPLERS: dict[str, type[Sampler]] = {}


class Sampler:
    """A rank's epoch order, cut into chunk tasks. Subclasses give `rank_segments`."""

    name: ClassVar[str]

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
        # A multiple of batch_size, so batches never straddle chunks. `row_bytes`
        # (fixed-width bytes per selected row) sizes chunks that are read by bytes.
        rows = spec.chunk_rows if spec.chunk_rows is not None else self.chunk_rows_for(row_bytes)
        self.chunk_rows = max(batch_size, rows // batch_size * batch_size)
        self._memo: tuple[int, Order] | None = None

    # ---- what a sampler type decides ------------------------------------------------

    def chunk_rows_for(self, row_bytes: int) -> int:
        """Rows per chunk when the recipe leaves `chunk_rows` unset."""
        return DEFAULT_CHUNK_ROWS

    def rank_segments(self, epoch: int) -> list[Segment]:
        """This rank's positions for `epoch`, in delivery order."""
        raise NotImplementedError

    def sequence(self, epoch: int, size: int, stream: tuple[int, ...] = ()) -> Segment:
        """An order of positions 0 .. size - 1 for `epoch`: dataset order unless the sampler
        shuffles. `stream` tells independent orders apart (a mixture's source and cycle)."""
        return range(size)

    def global_order(self, epoch: int) -> list[Segment]:
        """The epoch's order over all ranks: the sampler's own order of the universe, or a
        mixture's sources interleaved by weight; cut to `limit` rows."""
        u = self.universe
        if u.mixture is None:
            order = [self.sequence(epoch, u.size)]
        else:
            sizes = u.mixture.sizes
            order = [mixing.interleave(
                u.mixture, lambda source, cycle: self.sequence(epoch, sizes[source],
                                                               (source, cycle)),
                self.rng(epoch, MIXTURE_STREAM))]
        if self.spec.limit is not None:
            order = cut(order, 0, self.spec.limit)
        return order

    def chunk(self, epoch: int, index: int, cuts: list[int], lead: int) -> Task:
        """Chunk `index` (rows cuts[index]..cuts[index + 1] of the order) without its first
        `lead` rows, which a resume already delivered. By default a sorted take."""
        a, b = cuts[index], cuts[index + 1]
        picked = positions(self.order(epoch).slice(a + lead, b))
        return TakeTask(self.universe.ids(picked))

    # ---- shared ---------------------------------------------------------------------

    def order(self, epoch: int) -> Order:
        if self._memo is None or self._memo[0] != epoch:
            self._memo = (epoch, Order(self.rank_segments(epoch)))
        return self._memo[1]

    def rows(self, epoch: int = 0) -> int:
        return len(self.order(epoch))

    def batches(self, epoch: int = 0) -> int:
        return math.ceil(self.rows(epoch) / self.batch_size)

    def rng(self, *keys: int) -> np.random.Generator:
        # SeedSequence mixes the whole key, so (seed, epoch) pairs never collide.
        return np.random.default_rng([self.spec.seed % 2**64, *keys])

    def boundaries(self, epoch: int) -> list[int]:
        """Row offsets where chunks start, plus the end.

        The first chunk is one batch, so the first batch of an epoch costs one
        small read instead of a whole chunk.
        """
        total = self.rows(epoch)
        cuts = [0, *range(min(self.batch_size, total), total, self.chunk_rows)]
        return [*cuts, total] if total else [0]

    def tasks(self, epoch: int, skip_batches: int = 0, per_batch: bool = False
              ) -> Iterator[Task]:
        """This rank's tasks for `epoch`, without the first `skip_batches` batches.

        `per_batch`: one task per batch rather than per chunk, for recipes whose rows cost
        CPU (decoding, a transform) or hold large payloads: workers then share the work
        evenly and hold only what they prefetch. The order is the chunks' either way.
        """
        skip_rows = skip_batches * self.batch_size
        cuts = self.boundaries(epoch)
        for index, (a, b) in enumerate(itertools.pairwise(cuts)):
            if b > skip_rows:
                lead = max(0, skip_rows - a)
                task = self.chunk(epoch, index, cuts, lead)
                if per_batch:
                    yield from self.split(epoch, task, a + lead, b)
                else:
                    yield task

    def split(self, epoch: int, task: Task, a: int, b: int) -> Iterator[Task]:
        """`task`, rows a..b of the order (a on the batch grid), as one task per batch."""
        bs = self.batch_size
        if isinstance(task, TakeTask):
            yield from (TakeTask(task.ids[i : i + bs]) for i in range(0, len(task.ids), bs))
        elif isinstance(task, CacheTask):
            yield from (CacheTask(task.positions[i : i + bs])
                        for i in range(0, len(task.positions), bs))
        else:
            yield task

    def scan_runs(self, epoch: int, skip_batches: int = 0) -> tuple[ScanRun, ...] | None:
        """The rest of `epoch` as scanner runs, where its order is contiguous rows; else None.

        With 0 workers the loader reads such an order as one stream.
        """
        return None


class ScanSampler(Sampler):
    """A sampler whose order is runs of contiguous positions, read with scanners.

    Where a scanner would not read exactly the universe's rows (a split, a mixture), it
    reads them by id, as any other sampler.
    """

    @property
    def scans(self) -> bool:
        return self.universe.scannable and self.universe.mixture is None

    def _ranges(self, epoch: int, a: int, b: int) -> list[range]:
        ranges = self.order(epoch).slice(a, b)
        if not all(isinstance(s, range) for s in ranges):
            raise TypeError(f"{type(self).__name__} made a non-contiguous order")
        return ranges  # type: ignore[return-value]

    def chunk(self, epoch: int, index: int, cuts: list[int], lead: int) -> Task:
        if not self.scans:
            return super().chunk(epoch, index, cuts, lead)
        a, b = cuts[index], cuts[index + 1]
        runs = self.universe.runs(self._ranges(epoch, a + lead, b), self.batch_size)
        return ScanTask(runs, b - a - lead)

    def scan_runs(self, epoch: int, skip_batches: int = 0) -> tuple[ScanRun, ...] | None:
        if not self.scans:
            return None
        ranges = self._ranges(epoch, skip_batches * self.batch_size, self.rows(epoch))
        return self.universe.runs(ranges, self.batch_size)

    def split(self, epoch: int, task: Task, a: int, b: int) -> Iterator[Task]:
        if not self.scans:
            yield from super().split(epoch, task, a, b)
            return
        bs = self.batch_size
        for start in range(a, b, bs):
            stop = min(start + bs, b)
            yield ScanTask(self.universe.runs(self._ranges(epoch, start, stop), bs), stop - start)


def make_sampler(spec: SamplerSpec, universe: Universe, batch_size: int, drop_last: bool,
                 row_bytes: int = 0) -> Sampler:
    """The sampler of `spec.type` for one rank."""
    try:
        kind = SAMPLERS[spec.type]
    except KeyError:
        raise SamplerError(f"unknown sampler type {spec.type!r}") from None
    return kind.create(spec, universe, batch_size, drop_last, row_bytes)


# Each module of this package defines one sampler type; importing it registers it.
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("ordering", "mixing"):
        importlib.import_module(f"{__name__}.{_module.name}")
