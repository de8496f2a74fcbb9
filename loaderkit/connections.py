"""Ready-made connection factories for `source.connection_factory`, and what a factory may
know of the recipe that names it.

A factory is called as `factory(table_name)` inside each worker (and in the building
process). While loaderkit calls it, `recipe_source()` is the recipe's source section,
as the worker received it: plain settings, and each `${env:NAME}` still a reference,
which the factory resolves in its own process. So a factory can open exactly what the
recipe says, and nothing secret is pickled when workers start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from loaderkit.vocabulary import resolve_text

if TYPE_CHECKING:
    from loaderkit.runtime.spec import SourceSpec

_SOURCE: ContextVar[SourceSpec | None] = ContextVar("loaderkit_recipe_source", default=None)


@contextlib.contextmanager
def calling_factory(source: SourceSpec) -> Iterator[None]:
    """While the block runs, `recipe_source()` is `source`."""
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def recipe_source() -> SourceSpec:
    """The source section of the recipe whose connection factory loaderkit is calling now:
    `uri`, `table`, `region`, `host_override`, `storage_options` and `api_key`, with each
    `${env:NAME}` an `EnvValue` (`loaderkit.vocabulary.resolve_text` reads it)."""
    source = _SOURCE.get()
    if source is None:
        raise RuntimeError("recipe_source() is only known while loaderkit calls a recipe's "
                           "connection_factory")
    return source


def remote_table(name: str) -> Any:
    """A LanceDB Cloud / Enterprise table: the recipe's `source.uri` (db://...),
    `api_key`, `region` and `host_override`, each `${env:}` read in this process."""
    import lancedb

    source = recipe_source()
    if source.api_key is None:
        raise ValueError("the recipe's source has no api_key; remote_table needs one, e.g. "
                         "api_key: ${env:LANCEDB_API_KEY}")
    options: dict[str, Any] = {"api_key": resolve_text(source.api_key)}
    if source.region is not None:
        options["region"] = source.region
    if source.host_override is not None:
        options["host_override"] = source.host_override
    storage = {k: resolve_text(v) for k, v in source.storage_options.items()}
    if storage:
        options["storage_options"] = storage
    return lancedb.connect(resolve_text(source.uri), **options).open_table(name)
