"""The contract of a source kind: how it is recognised in a spec, opens, pins, keeps its
secrets, crosses into workers and is read. Each kind's module subclasses `SourceKind`;
the package lists them (sources/__init__.py).

Nothing here imports lance: the planner asks the kinds (their labels, their secrets)
in `lint`'s import-light process; the readers are imported when a source is read.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from loaderkit.errors import SourceError
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import EnvValue, Text, resolve_text, resolve_version

if TYPE_CHECKING:
    from loaderkit.runtime.sources.reader import Reader


# How the planner carries a `source` key's value onto the `SourceSpec` field of the same
# name (planning.source_spec): `${env:}` kept as a reference ("text": as text; "reference":
# other values as they are), each value of a mapping as text ("options"), or as it is.
RecipeKey = Literal["text", "reference", "options", "plain", "cache"]

# The `source` keys of every kind.
SHARED_KEYS: dict[str, RecipeKey] = {"uri": "text", "version": "reference",
                                     "storage_options": "options", "cache": "cache"}


class SourceKind:
    """How one kind of source opens, pins, keeps its secrets and crosses into workers."""

    name: ClassVar[str]
    label: ClassVar[str]  # how the build's object graph names it
    # The `source` keys the kind adds to SHARED_KEYS (models.py defines them for the schema).
    recipe_keys: ClassVar[dict[str, RecipeKey]] = {}

    @staticmethod
    def matches(source: SourceSpec) -> bool:
        """Whether `source` is of this kind (the package asks the kinds in its order)."""
        raise NotImplementedError

    @staticmethod
    def open(source: SourceSpec) -> Any:
        """The source opened in this process, at `source.version` when it is set."""
        raise NotImplementedError

    @staticmethod
    def reader(handle: Any, source: SourceSpec, reads_in_flight: int | None = None) -> Reader:
        """A reader of `handle` (what `open` gave, or a live object), its reads named by
        `source` (`reads_in_flight`: the recipe's, or None for the default of where it
        lives). By default: the fastest reader of a Lance dataset or a LanceDB table."""
        from loaderkit.runtime.sources.lance_reader import LanceReader, as_lance_dataset
        from loaderkit.runtime.sources.table_reader import TableReader

        ds = as_lance_dataset(handle)
        if ds is not None:
            return LanceReader(ds, source, reads_in_flight)
        if hasattr(handle, "take_offsets"):
            return TableReader(handle, source)
        raise SourceError(f"cannot read from a {type(handle).__name__}: not a Lance dataset "
                          "or table")

    @staticmethod
    def pinned(source: SourceSpec, handle: Any) -> SourceSpec:
        """`source` pinned to the version `handle` (what opening it gave) is at."""
        if source.version is not None:
            return source
        return dataclasses.replace(source, version=int(handle.version))

    @staticmethod
    def crosses_to_workers(source: SourceSpec) -> bool:
        """Whether a worker can open the source itself from its spec."""
        return True

    @staticmethod
    def secrets(source: SourceSpec) -> list[tuple[tuple[str, ...], Text]]:
        """The settings a worker resolves itself, by recipe key, that may hold a secret."""
        found: list[tuple[tuple[str, ...], Text]] = [(("source", "uri"), source.uri)]
        found += [(("source", "storage_options", k), v) for k, v in source.storage_options.items()]
        found += [(("source", key), value) for key in ("table", "version", "region",
                                                       "host_override")
                  if isinstance(value := getattr(source, key), EnvValue)]
        return found


def storage_options(source: SourceSpec) -> dict[str, str] | None:
    """The source's storage options, resolved here, in the process that uses them, and
    never stored on a spec."""
    opts = {k: resolve_text(v) for k, v in source.storage_options.items()}
    return opts or None


def checkout(obj: Any, pin: int | Text | None) -> Any:
    """`obj` (a LanceDataset or a LanceDB table) at version `pin` (None: as it is)."""
    import lance

    version = resolve_version(pin)
    if version is None:
        return obj
    if isinstance(obj, lance.LanceDataset):
        return obj.checkout_version(version)
    if getattr(obj, "version", None) != version:
        obj.checkout(version)
    return obj


def is_source_object(obj: Any) -> bool:
    """Whether `obj` is what a source opens to: a `lance.LanceDataset` or a LanceDB table."""
    import lance

    return isinstance(obj, lance.LanceDataset) or hasattr(obj, "take_offsets")
