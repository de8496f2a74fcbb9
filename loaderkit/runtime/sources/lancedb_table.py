"""A table of a LanceDB database: `source.uri` (a directory, memory:// or db://) plus `table`."""

from __future__ import annotations

from typing import Any, ClassVar

from loaderkit.runtime.sources.kind import RecipeKey, SourceKind, checkout, storage_options
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import Text, resolve_optional, resolve_text


class LanceDBTable(SourceKind):
    name = "lancedb_table"
    label = "LanceDB table"
    recipe_keys: ClassVar[dict[str, RecipeKey]] = {
        "table": "reference", "api_key": "text", "region": "reference",
        "host_override": "reference"}

    @staticmethod
    def matches(source: SourceSpec) -> bool:
        return source.is_lancedb

    @staticmethod
    def open(source: SourceSpec) -> Any:
        import lancedb

        kwargs: dict[str, Any] = {"storage_options": storage_options(source)}
        if source.api_key is not None:
            kwargs["api_key"] = resolve_text(source.api_key)
        if source.region is not None:
            kwargs["region"] = resolve_text(source.region)
        if source.host_override is not None:
            kwargs["host_override"] = resolve_text(source.host_override)
        table = lancedb.connect(resolve_text(source.uri), **kwargs).open_table(
            str(resolve_optional(source.table)))
        return checkout(table, source.version)

    @staticmethod
    def crosses_to_workers(source: SourceSpec) -> bool:
        # A memory:// database exists in one process: a worker's would be empty.
        return not resolve_text(source.uri).startswith("memory://")

    @staticmethod
    def secrets(source: SourceSpec) -> list[tuple[tuple[str, ...], Text]]:
        found = SourceKind.secrets(source)
        if source.api_key is not None:
            found.append((("source", "api_key"), source.api_key))
        return found
