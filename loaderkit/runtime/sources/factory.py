"""Whatever `source.connection_factory` returns: called as factory(table_name) in each process.

The factory reads its credentials from the process's own environment, so nothing
secret crosses into a worker; a factory that raises, exits or returns something
that is not a table is the user's error (`FactoryError`, with the user's frames),
not the source's. While it runs, `loaderkit.connections.recipe_source()` is the
recipe's source section, so a factory can open what the recipe names.
"""

from __future__ import annotations

from typing import Any, ClassVar

from loaderkit.connections import calling_factory
from loaderkit.errors import FactoryError
from loaderkit.references import call_user, import_attr, returned_wrong
from loaderkit.runtime.sources.kind import RecipeKey, SourceKind, checkout, is_source_object
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import Text, resolve_text

EXPECTED = "a LanceDB Table or a lance.LanceDataset"


class Factory(SourceKind):
    name = "factory"
    label = "table from a connection factory"
    recipe_keys: ClassVar[dict[str, RecipeKey]] = {
        "connection_factory": "plain", "table": "reference", "api_key": "text"}

    @staticmethod
    def matches(source: SourceSpec) -> bool:
        return source.connection_factory is not None

    @staticmethod
    def open(source: SourceSpec) -> Any:
        reference = str(source.connection_factory)
        factory = import_attr(reference, FactoryError)
        name = resolve_text(source.table if source.table is not None else source.uri)
        with calling_factory(source):
            table = call_user(FactoryError, reference, factory, name)
        if not is_source_object(table):
            connection = hasattr(table, "open_table")  # the database, not its table
            raise returned_wrong(FactoryError, reference, table, EXPECTED, hint=(
                "that is a LanceDB connection: return its .open_table(name)" if connection
                else ""))
        return checkout(table, source.version)

    @staticmethod
    def secrets(source: SourceSpec) -> list[tuple[tuple[str, ...], Text]]:
        found = SourceKind.secrets(source)
        if source.api_key is not None:  # what recipe_source() gives the factory
            found.append((("source", "api_key"), source.api_key))
        return found
