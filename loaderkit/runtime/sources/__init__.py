"""Source kinds: one module per way of opening a source, behind one contract.

What varies by kind lives in its `SourceKind` subclass (kind.py), and every stage asks
it: how a spec is recognised as the kind, how the source opens (and pins its version),
which of its settings are secrets, whether workers can open it themselves, how it is
read and how the build's graph names it. A worker receives a `SourceSpec` (plain data,
secrets as `EnvValue` names) and opens the source itself: a `LanceDataset` is never
pickled, because it carries its resolved storage options, credentials included.

The kinds are listed in `KINDS` below (docs/architecture.md). Shared by them all: the
reader contract (reader.py) and the readers (lance_reader.py, table_reader.py), blob and
image columns (payloads.py) and the engine-error mapping (failures.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loaderkit.errors import SourceError, UserCodeError
from loaderkit.runtime.sources import factory, lance_dataset, lancedb_table, live, mixture
from loaderkit.runtime.sources.failures import describe, source_error, user_code_error
from loaderkit.runtime.sources.kind import (
    SHARED_KEYS,
    RecipeKey,
    SourceKind,
    checkout,
    is_source_object,
    storage_options,
)
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import EnvValue

if TYPE_CHECKING:
    from loaderkit.runtime.sources.reader import Reader

# Every source kind, in the order a spec is matched: its kind is the first whose
# `matches` accepts it (a mixture before all; a plain uri, a Lance dataset, last).
KINDS: dict[str, type[SourceKind]] = {kind.name: kind for kind in (
    mixture.MixtureSourceKind, live.Live, factory.Factory, lancedb_table.LanceDBTable,
    lance_dataset.LanceDataset)}


def source_keys() -> dict[str, RecipeKey]:
    """Every `source` key a recipe may write, of every kind, with how it is carried onto
    the spec (a key two kinds share is carried the same way)."""
    keys = dict(SHARED_KEYS)
    for kind in KINDS.values():
        for key, how in kind.recipe_keys.items():
            if keys.setdefault(key, how) != how:
                raise TypeError(f"source kinds disagree on how to carry '{key}'")
    return keys


def kind_of(source: SourceSpec) -> type[SourceKind]:
    """The kind of `source`: the first of `KINDS` that matches it."""
    return next(kind for kind in KINDS.values() if kind.matches(source))


def open_source(source: SourceSpec) -> Any:
    """Open the source in this process: a `lance.LanceDataset` or a LanceDB table.

    The pinned `version` (if any) is checked out, so every reader sees the same rows.
    """
    try:
        return kind_of(source).open(source)
    except SourceError:
        raise
    except UserCodeError as exc:  # a factory is handed the uri: what it raises may quote it
        clean = user_code_error(exc, source)
        raise clean from clean.__cause__
    except Exception as exc:  # Lance raises plain ValueError/OSError/RuntimeError
        error = source_error("cannot open", source, exc)
        raise error from error.__cause__


def pinned(source: SourceSpec, handle: Any) -> SourceSpec:
    """`source` pinned to the version(s) `handle` (what `open_source(source)` gave) is at.

    Workers open exactly this version, so an append during training cannot change
    the rows (or their addresses) of an epoch already planned.
    """
    return kind_of(source).pinned(source, handle)


def pin_version(source: SourceSpec) -> SourceSpec:
    """`source` with `version` set to the version current now (if it was unset)."""
    if source.version is not None and not source.parts:
        return source
    return pinned(source, open_source(source))


def live_source(obj: Any) -> SourceSpec:
    """The spec of a live LanceDB `Table` or `lance.LanceDataset` (`load_recipe(source=...)`).

    Where workers can open the same rows themselves (a dataset on disk, or on an
    object store it reaches without options handed to it), the spec names it by
    uri, pinned to the object's version; otherwise (a `memory://` or remote table, a
    dataset opened with storage options, which may hold credentials) it is `live`:
    read in this process only.
    """
    from loaderkit.runtime.sources.lance_reader import as_lance_dataset

    if not is_source_object(obj):
        raise SourceError(f"source= takes a LanceDB Table or a lance.LanceDataset, not a "
                          f"{type(obj).__name__}")
    ds = as_lance_dataset(obj)
    if ds is not None and not ds.initial_storage_options:
        return SourceSpec(uri=ds.uri, version=int(ds.version))
    name = getattr(obj, "name", None)
    where = f"{type(obj).__name__} {name!r}" if name else type(obj).__name__
    return SourceSpec(uri=f"<live {where}>", table=name, version=obj.version, live=True,
                      location=ds.uri if ds is not None else None)


def open_reader(source: SourceSpec, reads_in_flight: int | None = None) -> Reader:
    """Open `source` and wrap it in its kind's reader."""
    return kind_of(source).reader(open_source(source), source, reads_in_flight)


__all__ = ["KINDS", "EnvValue", "SourceKind", "checkout", "describe", "is_source_object",
           "kind_of", "live_source", "open_reader", "open_source", "pin_version", "pinned",
           "source_keys", "storage_options"]

