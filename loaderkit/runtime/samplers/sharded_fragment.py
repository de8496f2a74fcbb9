"""`sharded_fragment`: fragment i to rank i % world_size, read whole, in dataset order."""

from __future__ import annotations

import numpy as np

from loaderkit.errors import SamplerError
from loaderkit.runtime.samplers import ScanSampler
from loaderkit.runtime.samplers.ordering import Segment, cut, wrap


class ShardedFragment(ScanSampler):
    """Uneven fragments give uneven ranks: `drop_last` trims each rank to the smallest
    rank's full batches; `uneven: pad` repeats rows up to the largest rank's."""

    name = "sharded_fragment"

    def rank_segments(self, epoch: int) -> list[Segment]:
        u, ws, r = self.universe, self.spec.world_size, self.spec.rank
        if u.mixture is not None:
            raise SamplerError("sharded_fragment deals fragments of one dataset, not a mixture")
        # `limit`: the first rows of dataset order, dealt by fragment as the whole would be.
        end = u.size if self.spec.limit is None else min(u.size, self.spec.limit)
        rows = np.clip(end - u.starts, 0, u.fragment_rows)
        mine: list[Segment] = [
            range(int(u.starts[i]), int(u.starts[i] + rows[i]))
            for i in range(r, len(u.fragment_ids), ws)
            if rows[i] > 0
        ]
        per_rank = [int(rows[k::ws].sum()) for k in range(ws)]
        if self.drop_last:
            return cut(mine, 0, min(per_rank) // self.batch_size * self.batch_size)
        if self.spec.uneven == "pad":
            return mine + wrap([range(end)], end, max(per_rank) - per_rank[r])
        return mine
