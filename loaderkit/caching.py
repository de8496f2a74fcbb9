"""`source.cache` in the front end: what lint can tell offline (LK230, LK231) and what `build`
finds and shows once the source is open (LK424-LK426, and the cache's line in the graph).

The cache itself is runtime/object_cache.py; nothing here downloads anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loaderkit.errors import Diagnostic
from loaderkit.reading import Document, KeyPath
from loaderkit.rules import rule
from loaderkit.runtime.storage import on_object_store
from loaderkit.vocabulary import EnvValue, env_reference


def _get(data: Any, *path: str | int) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _not_cached_reason(uri: str, table: Any, factory: Any) -> str | None:
    """Why a source with this uri / table / factory has no files to copy (None: it has)."""
    if factory is not None:
        return "a connection_factory opens it (its files are the factory's business)"
    if table is not None or uri.lower().startswith(("db://", "memory://")):
        return "a LanceDB table is read through LanceDB, not as files"
    if not on_object_store(uri):
        return "its files are already on this machine"
    return None


def lint_rules(document: Document, data: dict[str, Any], section: KeyPath
               ) -> Iterator[Diagnostic]:
    """LK230 (cache on a source with no object-store files) and LK231 (a cache dir that is a
    URI), for one source section."""
    cache = _get(data, *section, "cache")
    if not isinstance(cache, dict):
        return
    uri = _get(data, *section, "uri")
    name = ".".join(map(str, section))
    if isinstance(uri, str) and env_reference(uri) is None:
        reason = _not_cached_reason(uri, _get(data, *section, "table"),
                                    _get(data, *section, "connection_factory"))
        if reason is not None:
            yield rule("LK230").at(document.locate((*section, "cache"), key=True),
                                   f"'{name}.cache' has no effect: {reason}",
                                   "cache applies to Lance datasets on object stores "
                                   "(s3://, gs://, az://, ...); remove it")
    directory = cache.get("dir")
    if isinstance(directory, str) and "://" in directory:
        yield rule("LK231").at(document.locate((*section, "cache", "dir")),
                               f"'{name}.cache.dir' must be a local directory, not a URI",
                               "a path on this machine's disk, e.g. /mnt/nvme/lk-cache")


def build_report(plan: Any, prefix: tuple[str, ...], source: Any, handle: Any
                 ) -> list[Diagnostic]:
    """What `build` says of a source's cache: LK424-LK426, and a `cache` setting on the
    source's node of the graph (where, how much is there, whether the version is whole)."""
    if source.cache is None:
        return []
    from loaderkit.runtime import object_cache
    from loaderkit.runtime.sources.lance_reader import as_lance_dataset
    from loaderkit.vocabulary import resolve_text

    where = plan.document.locate((*prefix, "cache"), key=True)
    cache = object_cache.for_source(source)
    if cache is None:
        reason = _not_cached_reason(resolve_text(source.uri), source.table,
                                    source.connection_factory) or "not on an object store"
        plan.node(*prefix).settings["cache"] = f"none: {reason}"
        if isinstance(source.uri, str):
            return []  # a uri written in the recipe: said by lint (LK230)
        return [rule("LK426").at(where, f"'cache' has no effect: {reason}",
                                 "remove cache, or point uri at s3://, gs://, az://, ...")]
    problems: list[Diagnostic] = []
    # A directory read through ${env:...} is shown as the reference, like every such value.
    written = source.cache.dir
    directory = repr(written) if isinstance(written, EnvValue) else str(cache.directory)
    root = f"{directory}/{cache.root.name}"
    try:
        cache.root.mkdir(parents=True, exist_ok=True)
        probe = cache.root / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        plan.node(*prefix).settings["cache"] = "none: the directory is not writable"
        return [rule("LK424").at(where, f"cannot write the cache directory {directory}: "
                                        f"{exc.strerror or exc}",
                                 "name a writable local directory in cache.dir, or set "
                                 "LOADERKIT_CACHE")]
    version = int(handle.version) if handle is not None else None
    needed = _version_bytes(as_lance_dataset(handle)) if handle is not None else None
    files, held, whole = object_cache.usage(cache.directory, cache.uri, version)
    state = "whole: read locally" if whole else "filling as the first epoch reads"
    size = f" of {_mb(needed)}" if needed else ""
    bound = f"max_gb={cache.max_bytes / 2**30:g}" if cache.max_bytes else "bounded by free disk"
    plan.node(*prefix).settings["cache"] = (
        f"{root}: {files} files, {_mb(held)}{size} cached, version {version} {state} "
        f"({bound})")
    room = _room(cache, held)
    if needed and room is not None and needed > room:
        problems.append(rule("LK425").at(
            where, f"version {version} is {_mb(needed)}; the cache holds {_mb(room)}: the rest "
                   "is read from the store every epoch",
            f"raise cache.max_gb to at least {needed / 2**30:.1f}, or free disk space"))
    return problems


def _version_bytes(ds: Any) -> int | None:
    if ds is None:
        return None
    sizes = [getattr(d, "file_size_bytes", None) for f in ds.get_fragments()
             for d in f.data_files()]
    return sum(int(s) for s in sizes if s) or None


def _room(cache: Any, held: int) -> int | None:
    """The most of one version the cache can hold: its bound, or what is cached of it plus
    the disk's free space."""
    if cache.max_bytes is not None:
        return int(cache.max_bytes)
    try:
        free = os.statvfs(Path(cache.directory))
    except OSError:
        return None
    return held + free.f_bavail * free.f_frsize


def _mb(size: int | None) -> str:
    size = size or 0
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.1f} KB"
