"""A transform standing for a slow start (opening a remote store, warming a cache): the batch
that holds row 0 waits a second before it is delivered."""

from __future__ import annotations

import time
from typing import Any

WAIT_SECONDS = 1.0


def first_batch_waits(batch: dict[str, Any]) -> dict[str, Any]:
    if int(batch["id"].min()) == 0:
        time.sleep(WAIT_SECONDS)
    return batch
