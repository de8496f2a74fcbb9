"""Importable helpers that recipes name as "tests.runtime.factories:..."; they run inside
spawn workers, which import them by that name (spawn copies the runner's sys.path)."""

from __future__ import annotations

import os
from typing import Any

import lancedb
import torch


def _record_pid(kind: str) -> None:
    directory = os.environ.get("LK_TEST_PID_DIR")
    if directory:
        with open(os.path.join(directory, f"{kind}-{os.getpid()}"), "w"):
            pass


def open_items(name: str) -> Any:
    """A connection factory: records the calling process, returns a LanceDB table."""
    _record_pid("factory")
    return lancedb.connect(os.environ["LK_TEST_DB"]).open_table(name)


def tag_pid(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transform: adds the pid of the process that ran it to each row."""
    rows = len(batch["id"])
    return {**batch, "pid": torch.full((rows,), os.getpid(), dtype=torch.int64)}


def image_kind(batch: dict[str, Any]) -> dict[str, Any]:
    """A transform after `decode`: records what it received for the image column."""
    return {**batch, "seen": type(batch["image"]).__name__}


class OffsetsOnly:
    """A real LanceDB table with `to_lance` hidden: forces the offsets/query-API path."""

    def __init__(self, table: Any) -> None:
        self._table = table

    @property
    def version(self) -> int:
        return int(self._table.version)

    @property
    def schema(self) -> Any:
        return self._table.schema

    def checkout(self, version: int) -> None:
        self._table.checkout(version)

    def count_rows(self, filter: str | None = None) -> int:
        return int(self._table.count_rows(filter))

    def take_offsets(self, offsets: list[int]) -> Any:
        return self._table.take_offsets(offsets)


def open_offsets_only(name: str) -> OffsetsOnly:
    return OffsetsOnly(lancedb.connect(os.environ["LK_TEST_DB"]).open_table(name))
