"""The user's own code, named in a recipe as "module:attribute": importing and calling it.

One place for both halves: the build stage imports a reference to check it, each
worker imports it to call it. A call that raises becomes a `UserCodeError` whose
message carries the user's own frames (not loaderkit's, torch's or DataLoader's),
so the diagnostic at the recipe key can show them, even from a worker.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from loaderkit.errors import LoaderkitError, SourceError, UserCodeError

PACKAGE = str(Path(__file__).resolve().parent)
T = TypeVar("T")


def import_reference(reference: str) -> Any:
    """Resolve "package.module:attribute" (dots allowed after the colon); raises what the
    import raises (ImportError, AttributeError, or whatever the module's top level does)."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{reference!r} is not of the form 'module:attribute'")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def import_attr(reference: str) -> Any:
    """`import_reference` for the runtime: a failure is a `SourceError` naming the reference."""
    try:
        return import_reference(reference)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SourceError(f"cannot import {reference!r}: {exc}") from exc


def user_frames(exc: BaseException) -> str:
    """The traceback lines of `exc` from the first frame outside loaderkit on."""
    frames = traceback.extract_tb(exc.__traceback__)
    inside = 0
    while inside < len(frames) and frames[inside].filename.startswith(PACKAGE):
        inside += 1
    return "".join(traceback.format_list(frames[inside:])).rstrip("\n")


def call_user(error: type[UserCodeError], reference: str, function: Callable[..., T],
              *args: Any) -> T:
    """`function(*args)`, where `function` is what `reference` names: what it raises comes
    out as `error` (TransformError, FactoryError) with the user's frames in its message."""
    try:
        return function(*args)
    except (LoaderkitError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        what = error.recipe_key.rsplit(".", 1)[-1]
        summary = f"{what} {reference!r} raised {type(exc).__name__}: {exc}".replace("\n", " ")
        frames = user_frames(exc)
        raise error(f"{summary}\n{frames}" if frames else summary) from exc
