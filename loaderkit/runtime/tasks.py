"""What a worker is told to read: one chunk of a rank's epoch, in delivery order.

The main process decides every task (samplers/); a worker only reads one and
returns its batches, which keeps the order independent of the worker count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loaderkit.runtime.universe import ScanRun


@dataclass(frozen=True)
class ScanTask:
    """Contiguous universe rows, read with scanners (full_scan, sharded_batch,
    sharded_fragment)."""

    runs: tuple[ScanRun, ...]


@dataclass(frozen=True, eq=False)
class TakeTask:
    """Scattered rows: `ids` are row ids/addresses in delivery order (one sorted take)."""

    ids: np.ndarray


@dataclass(frozen=True, eq=False)
class CacheTask:
    """Rows of the in-memory cache (shuffle `cache` mode): universe positions, delivery order."""

    positions: np.ndarray


@dataclass(frozen=True)
class StandbyTask:
    """No rows: what a worker is sent first while the main process is still reading.

    DataLoader hands each worker its first tasks the moment it starts them, long
    before they can read (seconds of imports); these fill those places, so the
    rows stay with the main process until the workers are up (handover.py).
    """


Task = ScanTask | TakeTask | CacheTask | StandbyTask
