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

from loaderkit.runtime.samplers import GlobalSampler
from loaderkit.runtime.samplers.ordering import Ranges
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

    def chunk_rows_for(self, row_bytes: int) -> int:
        return BLOCK_CHUNK_ROWS

    def order_slice(self, n: int, key: tuple[int, ...], a: int, b: int) -> np.ndarray:
        size = max(1, self.spec.block_rows)
        blocks = -(-n // size)
        if blocks == 0:
            return np.zeros(0, dtype=np.int64)
        last = n - (blocks - 1) * size  # the one short block's rows
        order = self._permutation(blocks, key)
        short_at = int(order.inverse(np.array([blocks - 1]))[0]) * size  # where it starts
        index = np.arange(a, b, dtype=np.int64)
        # Before the short block every block is full; after it, shifted by its shortfall.
        shifted = np.where(index >= short_at + last, index + (size - last), index)
        rank, offset = shifted // size, shifted % size
        return order(rank) * size + offset
