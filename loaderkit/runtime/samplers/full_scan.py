"""`full_scan`: dataset order; the epoch is cut into world_size contiguous slices."""

from __future__ import annotations

from loaderkit.runtime.samplers import ScanSampler
from loaderkit.runtime.samplers.ordering import Order, Segment, contiguous_share


class FullScan(ScanSampler):
    name = "full_scan"

    def rank_segments(self, epoch: int) -> list[Segment]:
        glob, spec = self.global_order(epoch), self.spec
        return contiguous_share(glob, Order(glob).__len__(), self.batch_size, spec.world_size,
                                spec.rank, self.drop_last, spec.uneven)
