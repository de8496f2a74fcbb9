"""The runtime's one error hierarchy.

Everything the runtime raises on purpose derives from `RuntimeFailure`, so the
build stage (and users) can catch one class and turn it into a diagnostic.
"""

from __future__ import annotations

import re


class RuntimeFailure(Exception):
    """Base class of every error the runtime raises deliberately."""

    # Raised in a DataLoader worker: the worker's traceback (the message says which worker).
    worker_traceback: str | None = None


class FormatError(RuntimeFailure):
    """A column cannot be represented in the requested batch format."""


class ResumeError(RuntimeFailure):
    """A saved loader state cannot be continued exactly by this loader."""


class SourceError(RuntimeFailure):
    """The data source cannot be opened or read the way the recipe asks."""


class CacheBudgetError(RuntimeFailure):
    """Shuffle `cache` mode would hold more than `cache_mb` in memory."""


# Lance appends the Rust source locations of an error: ", /path/to/file.rs:335:56, ...".
_ENGINE_LOCATION = re.compile(r",\s*(/|[A-Za-z]:\\)\S+\.rs:\d+:\d+.*$", re.DOTALL)


def engine_message(exc: BaseException) -> str:
    """An engine's error text without the Rust source locations it appends."""
    text = _ENGINE_LOCATION.sub("", str(exc).strip()).strip()
    return text.removeprefix("Invalid user input: ") or type(exc).__name__
