"""Source kinds: one module per way of opening a source, behind one protocol.

What varies by kind lives in its `SourceKind` subclass, and every stage asks it:
how a source opens (and pins its version), which of its settings are secrets,
whether workers can open it themselves, and how the build's graph names it. A
worker receives a `SourceSpec` (plain data, secrets as `EnvValue` names) and
opens the source itself: a `LanceDataset` is never pickled, because it carries
its resolved storage options, credentials included.

Each module of this package defines one `SourceKind` subclass with a `name` from
`vocabulary.SOURCE_KINDS`; defining it registers it (docs/architecture.md). Shared by
them all: the readers (readers.py), blob and image columns (payloads.py) and the
engine-error mapping (failures.py).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, ClassVar

from loaderkit.errors import SourceError, UserCodeError
from loaderkit.runtime.sources.failures import describe, source_error, user_code_error
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import EnvValue, Text, resolve_text, resolve_version

KINDS: dict[str, type[SourceKind]] = {}


class SourceKind:
    """How one kind of source opens, pins, keeps its secrets and crosses into workers."""

    name: ClassVar[str]
    label: ClassVar[str]  # how the build's object graph names it

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "name" in cls.__dict__:
            KINDS[cls.name] = cls

    @staticmethod
    def open(source: SourceSpec) -> Any:
        """The source opened in this process, at `source.version` when it is set."""
        raise NotImplementedError

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


def kind_of(source: SourceSpec) -> type[SourceKind]:
    return KINDS[source.kind]


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
    from loaderkit.runtime.sources.readers import as_lance_dataset

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


def open_reader(source: SourceSpec, reads_in_flight: int | None = None) -> Any:
    """Open `source` and wrap it in the fastest reader that reads it (readers.py)."""
    from loaderkit.runtime.sources.readers import reader_for

    return reader_for(open_source(source), source, reads_in_flight)


__all__ = ["KINDS", "EnvValue", "SourceKind", "checkout", "describe", "is_source_object",
           "kind_of", "live_source", "open_reader", "open_source", "pin_version", "pinned",
           "storage_options"]

# Each module of this package that defines a source kind registers it when imported.
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("failures", "payloads", "readers"):
        importlib.import_module(f"{__name__}.{_module.name}")
