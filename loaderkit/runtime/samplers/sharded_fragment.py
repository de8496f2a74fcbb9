"""`sharded_fragment`: fragment i to rank i % world_size, read whole, in dataset order.

Each rank's order is its own (its fragments), so it neither keeps global batches
across world sizes nor resumes at another one.
"""

from __future__ import annotations

import numpy as np

from loaderkit.errors import SamplerError
from loaderkit.runtime.samplers import RankSampler


class ShardedFragment(RankSampler):
    """Uneven fragments give uneven ranks: `drop_last` trims each rank to the smallest
    rank's full batches; `uneven: pad` repeats rows up to the largest rank's."""

    name = "sharded_fragment"

    def rank_segments(self, epoch: int) -> list[range]:
        u, ws, r = self.universe, self.spec.world_size, self.spec.rank
        if u.mixture is not None:
            raise SamplerError("sharded_fragment deals fragments of one dataset, not a mixture")
        # `limit`: the first rows of dataset order, dealt by fragment as the whole would be.
        end = u.size if self.spec.limit is None else min(u.size, self.spec.limit)
        rows = np.clip(end - u.starts, 0, u.fragment_rows)
        mine = [range(int(u.starts[i]), int(u.starts[i] + rows[i]))
                for i in range(r, len(u.fragment_ids), ws) if rows[i] > 0]
        per_rank = [int(rows[k::ws].sum()) for k in range(ws)]
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


def _first(segments: list[range], count: int) -> list[range]:
    out = []
    for segment in segments:
        if count <= 0:
            break
        out.append(segment[:count])
        count -= len(out[-1])
    return out
