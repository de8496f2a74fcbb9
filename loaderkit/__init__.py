"""loaderkit: declarative YAML recipes compiled into safe PyTorch DataLoaders over Lance.

The public face is small: `load_recipe`, `RecipeError` and `Diagnostic`. Heavy
dependencies (torch, lance) load only when a recipe is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loaderkit.errors import (
    CacheBudgetError,
    DecodeError,
    Diagnostic,
    FactoryError,
    FormatError,
    LoaderkitError,
    Location,
    MissingEnvError,
    RecipeError,
    ResumeError,
    RuntimeFailure,
    SamplerError,
    Severity,
    SourceError,
    TransformError,
    UserCodeError,
    WorkerDied,
)

if TYPE_CHECKING:
    from loaderkit.runtime.loader import RecipeLoader

__all__ = [
    "CacheBudgetError",
    "DecodeError",
    "Diagnostic",
    "FactoryError",
    "FormatError",
    "LoaderkitError",
    "Location",
    "MissingEnvError",
    "RecipeError",
    "ResumeError",
    "RuntimeFailure",
    "SamplerError",
    "Severity",
    "SourceError",
    "TransformError",
    "UserCodeError",
    "WorkerDied",
    "load_recipe",
    "merge_states",
]
__version__ = "0.1.0"


def load_recipe(path: str, overrides: dict[str, Any] | None = None, *,
                source: Any = None) -> RecipeLoader:
    """Compile the recipe at `path` into a `torch.utils.data.DataLoader`.

    `overrides`: dotted keys, e.g. `{"loader.num_workers": 2}`. `source`: a live
    LanceDB `Table` or `lance.LanceDataset` in place of the recipe's source (a
    notebook's `memory://` table). Raises `RecipeError` (its `diagnostics` list every
    problem) when the recipe has any error.
    """
    from loaderkit.compiler import load_recipe as _load

    return _load(path, overrides, source=source)


def merge_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One loader state from every rank's `state_dict()` of the same pass: the rows no rank
    delivered, even when ranks took different numbers of steps. Load it on every rank of
    the next run, at any world size (docs/python.md)."""
    from loaderkit.runtime.state import merge_states as _merge

    return _merge(states)
