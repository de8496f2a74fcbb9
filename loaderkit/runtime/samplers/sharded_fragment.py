"""`sharded_fragment`: fragment i to rank i % world_size, read whole, in dataset order.

Each rank's order is its own (its fragments), so it neither keeps global batches
across world sizes nor resumes at another one.
"""

from __future__ import annotations

import numpy as np

from loaderkit.errors import SamplerError
from loaderkit.runtime.samplers import dealing
from loaderkit.runtime.samplers.base import RankSampler
from loaderkit.runtime.samplers.dealing import Deal


class ShardedFragment(RankSampler):
    """Uneven fragments give ranks unequal rows. By default (`uneven: split`) every rank
    cuts its rows into the same number of batches, that of the largest rank (smaller
    ranks end with smaller batches); `drop_last` trims each rank to the smallest rank's
    full batches; `uneven: pad` repeats rows up to the largest rank's; `allow` lets the
    ranks' batch counts differ."""

    name = "sharded_fragment"

    def _rows(self) -> tuple[int, np.ndarray]:
        """(the end of the epoch's rows in dataset order, each fragment's rows in it)."""
        u = self.universe
        if u.mixture is not None:
            raise SamplerError("sharded_fragment deals fragments of one dataset, not a mixture")
        # `limit`: the first rows of dataset order, dealt by fragment as the whole would be.
        end = u.size if self.spec.limit is None else min(u.size, self.spec.limit)
        return end, np.clip(end - u.starts, 0, u.fragment_rows)

    def per_rank(self) -> list[int]:
        """Rows of each rank's fragments."""
        _, rows = self._rows()
        ws = self.spec.world_size
        return [int(rows[k::ws].sum()) for k in range(ws)]

    def rank_segments(self, epoch: int) -> list[range]:
        u, ws, r = self.universe, self.spec.world_size, self.spec.rank
        end, rows = self._rows()
        mine = [range(int(u.starts[i]), int(u.starts[i] + rows[i]))
                for i in range(r, len(u.fragment_ids), ws) if rows[i] > 0]
        per_rank = self.per_rank()
        have = per_rank[r]
        if self.drop_last:
            return _first(mine, min(per_rank) // self.batch_size * self.batch_size)
        if self.spec.uneven == "pad":
            extra, out = max(per_rank) - have, list(mine)
            while extra > 0:  # the epoch's first rows again, cycling
                take = min(extra, end)
                out.append(range(0, take))
                extra -= take
            return out
        return mine

    def rank_deal(self, epoch: int) -> Deal:
        rows = self.epoch_rows(epoch)
        if self.spec.uneven == "split" and not self.drop_last and self.spec.world_size > 1:
            steps = -(-max(self.per_rank()) // self.batch_size)  # the largest rank's batches
            equal = dealing.spread(rows, self.batch_size, steps)
            if equal is not None:  # else a rank has fewer rows than steps: the build says so
                return equal
        return super().rank_deal(epoch)


def _first(segments: list[range], count: int) -> list[range]:
    out = []
    for segment in segments:
        if count <= 0:
            break
        out.append(segment[:count])
        count -= len(out[-1])
    return out
