"""The runtime: builds the DataLoader and runs inside its workers.

Public surface: `open_source`, `pin_version`, `make_loader`, `RecipeLoader`, the
error classes, and for the build stage's checks `as_lance_dataset`,
`tensor_incompatible_columns` (alias `unsupported_columns`) and `probe_dataset`.
"""

from loaderkit.runtime.dataset import ChunkDataset
from loaderkit.runtime.errors import (
    CacheBudgetError,
    FormatError,
    ResumeError,
    RuntimeFailure,
    SourceError,
)
from loaderkit.runtime.formats import tensor_incompatible_columns, unsupported_columns
from loaderkit.runtime.loader import RecipeLoader, make_loader
from loaderkit.runtime.sources import as_lance_dataset, open_source, pin_version


def probe_dataset(dataset: ChunkDataset) -> str:
    """Open the source from an unpickled worker dataset and read one row (spawn probe)."""
    return dataset.probe()


__all__ = [
    "CacheBudgetError",
    "FormatError",
    "RecipeLoader",
    "ResumeError",
    "RuntimeFailure",
    "SourceError",
    "as_lance_dataset",
    "make_loader",
    "open_source",
    "pin_version",
    "probe_dataset",
    "tensor_incompatible_columns",
    "unsupported_columns",
]
