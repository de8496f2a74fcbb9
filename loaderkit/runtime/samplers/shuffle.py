"""`shuffle`: a global order from (seed, epoch), cut into world_size contiguous slices.

Three modes trade fidelity for speed and memory (sampler.mode):
- `block`: a random order of contiguous blocks, mixed inside each chunk; each
  chunk is read as runs of rows (fast, memory-bounded).
- `exact`: a true per-row permutation; each chunk is one sorted scattered take.
- `cache`: a true permutation over the columns held in memory.
"""

from __future__ import annotations

import math

import numpy as np

from loaderkit.runtime.samplers import Sampler, mixing
from loaderkit.runtime.samplers.ordering import Order, Segment, contiguous_share, positions
from loaderkit.runtime.spec import SamplerSpec
from loaderkit.runtime.tasks import CacheTask, TakeTask, Task
from loaderkit.runtime.universe import Universe

# Larger chunks mix blocks better (block) and make a scattered take cheaper per row
# (exact), at the cost of memory.
BLOCK_CHUNK_ROWS = 131072
EXACT_CHUNK_BYTES = 128 * 2**20
EXACT_CHUNK_ROWS = (65536, 1 << 20)  # bounds of the byte-sized exact chunk
# A cache chunk is one in-memory gather. Kept well under glibc's 32 MB mmap
# threshold, its buffer is recycled from the heap instead of page-faulted in.
CACHE_CHUNK_ROWS = 16384


class Shuffle(Sampler):
    """The exact mode; the other modes are subclasses (`create` picks by `spec.mode`)."""

    name = "shuffle"

    @classmethod
    def create(cls, spec: SamplerSpec, universe: Universe, batch_size: int, drop_last: bool,
               row_bytes: int = 0) -> Sampler:
        mode = {"block": BlockShuffle, "exact": Shuffle, "cache": CacheShuffle}[spec.mode]
        return mode(spec, universe, batch_size, drop_last, row_bytes)

    def chunk_rows_for(self, row_bytes: int) -> int:
        if row_bytes <= 0:  # only variable-width columns: no byte estimate
            return 4 * 65536
        lo, hi = EXACT_CHUNK_ROWS
        return min(hi, max(lo, EXACT_CHUNK_BYTES // row_bytes))

    def sequence(self, epoch: int, size: int, stream: tuple[int, ...] = ()) -> Segment:
        """A permutation of 0 .. size - 1 from (seed, epoch, stream)."""
        return self.rng(epoch, *stream).permutation(size).astype(np.int64, copy=False)

    def rank_segments(self, epoch: int) -> list[Segment]:
        glob, spec = self.global_order(epoch), self.spec
        return contiguous_share(glob, len(Order(glob)), self.batch_size, spec.world_size,
                                spec.rank, self.drop_last, spec.uneven)


class CacheShuffle(Shuffle):
    """`cache`: chunks are gathers from the columns held in memory."""

    def chunk_rows_for(self, row_bytes: int) -> int:
        return CACHE_CHUNK_ROWS

    def chunk(self, epoch: int, index: int, cuts: list[int], lead: int) -> Task:
        return CacheTask(positions(self.order(epoch).slice(cuts[index] + lead, cuts[index + 1])))


class BlockShuffle(Shuffle):
    """`block`: contiguous blocks of `block_rows` in random order, mixed inside chunks."""

    def chunk_rows_for(self, row_bytes: int) -> int:
        return BLOCK_CHUNK_ROWS

    def sequence(self, epoch: int, size: int, stream: tuple[int, ...] = ()) -> Segment:
        # Random order of contiguous blocks: neighbours on disk stay neighbours, so
        # each chunk's sorted take reads runs instead of single rows.
        n, rng = size, self.rng(epoch, *stream)
        b = max(1, self.spec.block_rows)
        starts = rng.permutation(math.ceil(n / b)).astype(np.int64) * b
        lengths = np.minimum(b, n - starts)
        before = np.cumsum(lengths) - lengths
        offsets = np.arange(n, dtype=np.int64) - np.repeat(before, lengths)
        return offsets + np.repeat(starts, lengths)

    def chunk(self, epoch: int, index: int, cuts: list[int], lead: int) -> Task:
        # Blocks alone would deliver block_rows-row runs; mixing inside the chunk
        # breaks them up at no I/O cost. Done before trimming, so a resumed chunk has
        # the same order as the uninterrupted one. The one-batch first chunk is mixed
        # together with the next chunk (else it would be a single block: rows
        # 1..1024 of one spot on disk).
        a, b = cuts[index], cuts[index + 1]
        ga, gb = (cuts[0], cuts[min(2, len(cuts) - 1)]) if index < 2 else (a, b)
        key = 0 if index < 2 else index
        picked = positions(self.order(epoch).slice(ga, gb))
        rng = self.rng(epoch, self.spec.rank, key)
        mixture = self.universe.mixture
        if mixture is None:
            picked = picked[rng.permutation(len(picked))]
        else:
            # Mix each source's rows among that source's places: the interleave, and
            # so the mixture's proportions at every point, stay as they were.
            picked = picked.copy()
            sources = mixing.source_of(mixture, picked)
            for source in range(len(mixture.sizes)):
                places = np.flatnonzero(sources == source)
                picked[places] = picked[places[rng.permutation(len(places))]]
        picked = picked[a - ga : b - ga][lead:]
        return TakeTask(self.universe.ids(picked))
