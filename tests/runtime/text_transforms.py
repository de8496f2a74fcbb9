"""A transform for the tokenize tests: which process made the batch, and its tokenizer threads."""

from __future__ import annotations

import os
from typing import Any


def mark_process(batch: dict[str, Any]) -> dict[str, Any]:
    batch["pid"] = os.getpid()
    batch["rayon_threads"] = os.environ.get("RAYON_NUM_THREADS")
    return batch
