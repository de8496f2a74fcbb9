"""User code, the way users write it: the unsafe patterns the checker must refuse, and
the safe ones it must let through. A real importable module, so spawn workers (and the
spawn probe) import it exactly as they would import a user's project.

Everything reads its paths from the environment (`LK_TEST_DB`, `LK_TEST_DATASET`), which
spawn children inherit; nothing here opens data at import time unless its name says so.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from typing import Any

# --- safe -------------------------------------------------------------------------------


def double_score(batch: dict[str, Any]) -> dict[str, Any]:
    """A plain module-level transform."""
    batch["score"] = batch["score"] * 2
    return batch


def open_table(name: str) -> Any:
    """A plain module-level connection factory: everything from arguments and environment."""
    import lancedb

    return lancedb.connect(os.environ["LK_TEST_DB"]).open_table(name)


# --- LK501: nothing importable by name --------------------------------------------------

lambda_transform = lambda batch: batch  # noqa: E731  (the point of the test)


def _make_closure(factor: float) -> Any:
    def scale(batch: dict[str, Any]) -> dict[str, Any]:
        batch["score"] = batch["score"] * factor
        return batch

    return scale


closure_transform = _make_closure(3.0)


# --- LK501: bound methods of objects that do not pickle ---------------------------------


class _Holder:
    """An object a transform method hangs off, holding something that cannot be pickled."""

    def __init__(self, resource: Any) -> None:
        self.resource = resource

    def transform(self, batch: dict[str, Any]) -> dict[str, Any]:
        return batch


locked_transform = _Holder(threading.Lock()).transform
file_transform = _Holder(tempfile.TemporaryFile()).transform  # noqa: SIM115 (held open)
socket_transform = _Holder(socket.socket()).transform


# --- a module attribute that is a LanceDB table (opened lazily, on first access) --------


def __getattr__(name: str) -> Any:
    """`table` is a LanceDB Table object opened when first looked up, as a module global
    assigned at import would be (deferred only so that importing this module opens nothing)."""
    if name == "table":
        import lancedb

        value = lancedb.connect(os.environ["LK_TEST_DB"]).open_table("items")
        globals()["table"] = value
        return value
    raise AttributeError(name)


# --- LK503: a factory that only works in the process that set it up ---------------------

PARENT_STATE: dict[str, str] = {}  # the test process fills this; a fresh worker has it empty


def parent_only_factory(name: str) -> Any:
    import lancedb

    return lancedb.connect(PARENT_STATE["db"]).open_table(name)


# --- LK411: user code that raises while batches are taken -------------------------------

def failing_transform(batch: dict[str, Any]) -> dict[str, Any]:
    """Raises on every batch, from a helper: both frames are the user's."""
    return _check_pixels(batch)


def _check_pixels(batch: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("corrupt pixels in this batch")


def failing_factory(name: str) -> Any:
    raise ConnectionError(f"cannot reach the server for table {name}")


lambda_factory = lambda name: open_table(name)  # noqa: E731  (the point of the test)
