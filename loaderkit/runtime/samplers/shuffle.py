"""`shuffle`: a global order from (seed, epoch), its batches taken by the ranks in turn.

Three modes trade fidelity for speed and memory (sampler.mode):
- `exact`: a true per-row permutation (a keyed Feistel network, computed for the
  rows a task needs); each task is one sorted scattered take.
- `block`: contiguous blocks of `block_rows` in a permuted order, then each chunk of
  the order mixed in memory; a task reads runs of rows (fast, memory-bounded).
- `cache`: a true permutation over the columns held in memory.
All of them cost the same to plan whatever the dataset's size: no order is ever
materialised beyond the rows a task reads.
"""

from __future__ import annotations

import numpy as np

from loaderkit.runtime.samplers.base import GlobalSampler
from loaderkit.runtime.samplers.ordering import FIRST_CHUNK_ROWS, ChunkGrid, Ranges
from loaderkit.runtime.samplers.permutation import Permutation
from loaderkit.runtime.spec import SamplerSpec
from loaderkit.runtime.tasks import CacheTask, Task
from loaderkit.runtime.universe import Universe

# Larger chunks mix blocks better (block) and make a scattered take cheaper per row
# (exact), at the cost of memory.
BLOCK_CHUNK_ROWS = 131072
EXACT_CHUNK_BYTES = 128 * 2**20
EXACT_CHUNK_ROWS = (65536, 1 << 20)  # bounds of the byte-sized exact chunk
# A cache chunk is one in-memory gather. Kept well under glibc's 32 MB mmap
# threshold, its buffer is recycled from the heap instead of page-faulted in.
CACHE_CHUNK_ROWS = 16384


class Shuffle(GlobalSampler):
    """The exact mode; the other modes are subclasses (`create` picks by `spec.mode`)."""

    name = "shuffle"

    @classmethod
    def create(cls, spec: SamplerSpec, universe: Universe, batch_size: int, drop_last: bool,
               row_bytes: int = 0) -> GlobalSampler:
        mode = {"block": BlockShuffle, "exact": Shuffle, "cache": CacheShuffle}[spec.mode]
        return mode(spec, universe, batch_size, drop_last, row_bytes)

    def chunk_rows_for(self, row_bytes: int) -> int:
        if row_bytes <= 0:  # only variable-width columns: no byte estimate
            return 4 * 65536
        lo, hi = EXACT_CHUNK_ROWS
        return min(hi, max(lo, EXACT_CHUNK_BYTES // row_bytes))

    def chunk_grid(self) -> ChunkGrid:
        # A scattered take costs more per row the sparser it is (Lance reads each row
        # apart): after one global step, straight to full chunks. The order is per row,
        # so the grid may depend on the batch size without changing any batch.
        step = self.batch_size * self.spec.world_size
        return ChunkGrid(self.chunk_rows, first=step, doubling=False)

    def _permutation(self, n: int, key: tuple[int, ...]) -> Permutation:
        return Permutation(n, (self.spec.seed, *key))

    def order_at(self, n: int, key: tuple[int, ...], index: np.ndarray) -> np.ndarray:
        return self._permutation(n, key)(index)

    def order_slice(self, n: int, key: tuple[int, ...], a: int, b: int) -> np.ndarray:
        return self.order_at(n, key, np.arange(a, b, dtype=np.int64))


class CacheShuffle(Shuffle):
    """`cache`: tasks are gathers from the columns held in memory."""

    def chunk_rows_for(self, row_bytes: int) -> int:
        return CACHE_CHUNK_ROWS

    def task_of(self, epoch: int, remaining: Ranges, batches: range) -> Task:
        return CacheTask(self._rows_of(epoch, remaining, batches))


class BlockShuffle(Shuffle):
    """`block`: contiguous blocks of `block_rows` in a keyed order, mixed inside chunks.

    Blocks alone would deliver block_rows-row runs; mixing each chunk of the order in
    memory breaks them up at no I/O cost, and a chunk's rows still come from few spots
    on disk, so a task's sorted take reads runs instead of single rows.
    """

    mixes_chunks = True
    # Its order is blocks (order_slice), not Shuffle's per-row permutation.
    order_at = GlobalSampler.order_at

    def chunk_grid(self) -> ChunkGrid:
        # The mixing unit, fixed by the rows alone; whole blocks, so a block is one read.
        size = max(1, self.spec.block_rows)
        return ChunkGrid(max(size, self.chunk_rows // size * size),
                         max(size, FIRST_CHUNK_ROWS // size * size))

    def chunk_rows_for(self, row_bytes: int) -> int:
        return BLOCK_CHUNK_ROWS

    def order_slice(self, n: int, key: tuple[int, ...], a: int, b: int) -> np.ndarray:
        size = max(1, self.spec.block_rows)
        full = n // size  # whole blocks; a short last block keeps its place at the end, so
        # every block (and the grid's chunks, multiples of size) starts on the block grid
        index = np.arange(a, b, dtype=np.int64)
        rank, offset = index // size, index % size
        inside = rank < full
        if not inside.any():
            return index
        # The network once per block, not per row: a slice holds few blocks.
        first, last = int(rank[0]), int(rank[inside][-1])
        blocks = self._permutation(full, key)(np.arange(first, last + 1, dtype=np.int64))
        out = index.copy()
        out[inside] = blocks[rank[inside] - first] * size + offset[inside]
        return out
