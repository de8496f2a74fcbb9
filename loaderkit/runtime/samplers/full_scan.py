"""`full_scan`: dataset order; batch i of the epoch to rank i % world_size (the rows after
the last whole step split over the ranks by default: samplers/dealing.py)."""

from __future__ import annotations

from loaderkit.runtime.samplers.base import ScanGlobalSampler


class FullScan(ScanGlobalSampler):
    """One rank scans; several take dataset order's batches in turn, so global step k holds
    the same rows at every world size."""

    name = "full_scan"
