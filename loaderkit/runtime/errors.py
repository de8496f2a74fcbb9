"""The runtime's one error hierarchy.

Everything the runtime raises on purpose derives from `RuntimeFailure`, so the
build stage (and users) can catch one class and turn it into a diagnostic.
"""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base class of every error the runtime raises deliberately."""


class FormatError(RuntimeFailure):
    """A column cannot be represented in the requested batch format."""


class ResumeError(RuntimeFailure):
    """A saved loader state cannot be continued exactly by this loader."""


class SourceError(RuntimeFailure):
    """The data source cannot be opened or read the way the recipe asks."""


class CacheBudgetError(RuntimeFailure):
    """Shuffle `cache` mode would hold more than `cache_mb` in memory."""
