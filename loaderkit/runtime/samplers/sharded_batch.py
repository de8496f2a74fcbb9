"""`sharded_batch`: batch i of dataset order (batch_size rows) to rank i % world_size."""

from __future__ import annotations

import math

from loaderkit.runtime.samplers import Sampler
from loaderkit.runtime.samplers.ordering import Order, Segment, wrap


class ShardedBatch(Sampler):
    """With `drop_last` the epoch is trimmed to whole rounds of world_size batches; with
    `uneven: pad` it is padded to them."""

    name = "sharded_batch"

    def rank_segments(self, epoch: int) -> list[Segment]:
        glob: list[Segment] = self.global_order(epoch)
        n, bs = len(Order(glob)), self.batch_size
        ws, r = self.spec.world_size, self.spec.rank
        if self.drop_last:
            total = n // (ws * bs) * ws * bs
        elif self.spec.uneven == "pad":
            total = math.ceil(n / (ws * bs)) * ws * bs
            glob = glob + wrap(glob, n, total - n)
        else:
            total = n
        order = Order(glob)
        out: list[Segment] = []
        for k in range(r, math.ceil(total / bs), ws):
            out += order.slice(k * bs, min((k + 1) * bs, total))
        return out
