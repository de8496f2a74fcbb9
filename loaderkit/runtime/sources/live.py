"""A live object handed to `load_recipe(source=...)` that no other process can open.

A memory:// or remote table, or a dataset opened with storage options: the main
process reads it through the handle it was given; a worker cannot open it, so a
recipe with workers is refused at build (LK210).
"""

from __future__ import annotations

from typing import Any

from loaderkit.errors import SourceError
from loaderkit.runtime.sources.failures import describe
from loaderkit.runtime.sources.kind import SourceKind
from loaderkit.runtime.spec import SourceSpec


class Live(SourceKind):
    name = "live"
    label = "live source (load_recipe(source=...))"

    @staticmethod
    def matches(source: SourceSpec) -> bool:
        return source.live

    @staticmethod
    def open(source: SourceSpec) -> Any:
        raise SourceError(f"{describe(source)} was handed to load_recipe in another process; "
                          "only that process can read it")

    @staticmethod
    def crosses_to_workers(source: SourceSpec) -> bool:
        return False
