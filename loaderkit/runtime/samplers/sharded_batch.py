"""`sharded_batch`: batch i of dataset order (batch_size rows) to rank i % world_size (the
rows after the last whole step split over the ranks by default: samplers/dealing.py).

Now that every global sampler deals batches in turn, this is `full_scan` by the name
lance.sampler.ShardedBatchSampler users know.
"""

from __future__ import annotations

from loaderkit.runtime.samplers.base import ScanGlobalSampler


class ShardedBatch(ScanGlobalSampler):
    name = "sharded_batch"
