"""The runtime: builds the DataLoader and runs inside its workers.

Importing this package loads nothing: `loaderkit.runtime.spec`, which the
planner imports, must not pull in torch or lance. The names below load their
module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ChunkDataset": "loaderkit.runtime.dataset",
    "RecipeLoader": "loaderkit.runtime.loader",
    "make_loader": "loaderkit.runtime.loader",
    "as_lance_dataset": "loaderkit.runtime.sources.lance_reader",
    "open_source": "loaderkit.runtime.sources",
    "pin_version": "loaderkit.runtime.sources",
    "pinned": "loaderkit.runtime.sources",
    "unsupported_columns": "loaderkit.runtime.formats",
    "CacheBudgetError": "loaderkit.errors",
    "FormatError": "loaderkit.errors",
    "ResumeError": "loaderkit.errors",
    "RuntimeFailure": "loaderkit.errors",
    "SourceError": "loaderkit.errors",
    "WorkerDied": "loaderkit.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loaderkit.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def probe_dataset(dataset: Any) -> str:
    """Open the source from an unpickled worker dataset and read one row (spawn probe)."""
    return str(dataset.probe())
