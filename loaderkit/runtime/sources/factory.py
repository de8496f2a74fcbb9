"""Whatever `source.connection_factory` returns: called as factory(table_name) in each process.

The factory reads its credentials from the process's own environment, so nothing
secret crosses into a worker; a factory that raises is the user's error
(`FactoryError`, with the user's frames), not the source's.
"""

from __future__ import annotations

from typing import Any

from loaderkit.errors import FactoryError
from loaderkit.references import call_user, import_attr
from loaderkit.runtime.sources import SourceKind, checkout
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import resolve_text


class Factory(SourceKind):
    name = "factory"
    label = "table from a connection factory"

    @staticmethod
    def open(source: SourceSpec) -> Any:
        reference = str(source.connection_factory)
        factory = import_attr(reference)
        name = resolve_text(source.table if source.table is not None else source.uri)
        return checkout(call_user(FactoryError, reference, factory, name), source.version)
