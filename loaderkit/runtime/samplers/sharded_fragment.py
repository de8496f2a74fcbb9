"""`sharded_fragment`: fragment i to rank i % world_size, read whole, in dataset order."""

from __future__ import annotations

from loaderkit.runtime.samplers import ScanSampler
from loaderkit.runtime.samplers.ordering import Segment, cut, wrap


class ShardedFragment(ScanSampler):
    """Uneven fragments give uneven ranks: `drop_last` trims each rank to the smallest
    rank's full batches; `uneven: pad` repeats rows up to the largest rank's."""

    name = "sharded_fragment"

    def rank_segments(self, epoch: int) -> list[Segment]:
        u, ws, r = self.universe, self.spec.world_size, self.spec.rank
        mine: list[Segment] = [
            range(int(u.starts[i]), int(u.starts[i] + u.fragment_rows[i]))
            for i in range(r, len(u.fragment_ids), ws)
            if u.fragment_rows[i] > 0
        ]
        per_rank = [int(u.fragment_rows[k::ws].sum()) for k in range(ws)]
        if self.drop_last:
            return cut(mine, 0, min(per_rank) // self.batch_size * self.batch_size)
        if self.spec.uneven == "pad":
            return mine + wrap([range(u.size)], u.size, max(per_rank) - per_rank[r])
        return mine
