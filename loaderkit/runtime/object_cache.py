"""`source.cache`: a local copy of the files a Lance dataset version on an object store is made of.

A Lance version never changes its files: a data file, deletion file or index is written once
under a new name and the manifest names them. So a local copy stays valid for as long as the
version exists, and needs no check against the store. The copy is a mirror of the dataset's
own layout under `<dir>/<key>/` (`key`: a hash of the uri without its query, user info or
anything else that could be a credential), holding the version's manifest and the files it
names; once every one is there, the version opens from the mirror and the store is not asked
again (`open_local`). Until then each data file that is complete is read from the mirror
(`data_file`), the rest from the store.

Filling is the readers' side job: the first process that opens the remote version starts a
background thread that downloads its files (largest pieces of work first). A download goes to
`NAME.part`, under an exclusive `fcntl` lock on `NAME.lock`, in pieces appended in order (so a
process killed mid-file leaves a correct prefix, which the next download resumes), and becomes
`NAME` by an atomic rename once its size is right: a half-written file is never read under its
name, and each file is downloaded once per machine however many ranks and workers fill at once.

`max_gb` bounds the directory: before a download, the least recently used complete files (and
parts a killed download left) of any dataset under it leave first, except those of a dataset a
process is reading from the copy (it holds a shared lock on the mirror's IN_USE file); a file
that cannot fit is simply not cached.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loaderkit.runtime import storage

CACHE_ENV = "LOADERKIT_CACHE"
# A download's piece: one ranged request, appended to the part file as it arrives (what a
# killed download keeps). Large enough that the request's latency is small beside it.
PIECE_BYTES = 8 << 20
# Downloads one process runs at once (each a file, piece after piece).
FILL_THREADS = 2
# Free disk a cache without `max_gb` leaves.
RESERVE_BYTES = 1 << 30
MARKER_DIR = "_loaderkit"
USER_AGENT = "loaderkit-cache"
PART, LOCK, RESERVE = ".part", ".lock", ".reserve"
IN_USE = ".in-use"


def default_dir() -> Path:
    """`$LOADERKIT_CACHE`, else the user's cache directory (`$XDG_CACHE_HOME`, ~/.cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loaderkit"


def dataset_key(uri: str) -> str:
    """The mirror's directory name: a hash of where the dataset is, never of a credential
    (user info, query string and fragment are dropped before hashing)."""
    parts = urlsplit(uri.rstrip("/"))
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    where = f"{parts.scheme.lower()}://{host}{port}{parts.path}"
    return hashlib.sha256(where.encode()).hexdigest()[:32]


def cacheable(uri: str) -> bool:
    """Whether `uri` is a Lance dataset on an object store (what a cache can copy)."""
    return storage.on_object_store(uri) and not uri.lower().startswith("db://")


@dataclass(frozen=True)
class CachedFile:
    """A file of a version: its path relative to the dataset, and its size when known."""

    rel: str
    size: int | None = None


def version_files(ds: Any, manifest: str) -> list[CachedFile] | None:
    """The files the version `ds` is at reads: its manifest, data files, deletion files and
    indices; None where a file lives outside the dataset's directory (another base)."""
    files = [CachedFile(manifest)]
    for fragment in ds.get_fragments():
        meta = fragment.metadata
        for data in meta.files:
            if getattr(data, "base_id", None) is not None:
                return None
            size = getattr(data, "file_size_bytes", None)
            files.append(CachedFile(f"data/{data.path}", int(size) if size else None))
        if meta.deletion_file is not None:
            if getattr(meta.deletion_file, "base_id", None) is not None:
                return None
            files.append(CachedFile(meta.deletion_file.path(meta.id)))
    return files


def _index_files(ds: Any, session: Any) -> list[CachedFile] | None:
    """The files of the version's indices (a filter may read them), listed in the store;
    None where one lives outside the dataset's directory."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # list_indices' deprecation notice
        indices = ds.list_indices()
    files: list[CachedFile] = []
    for index in indices:
        if index.get("base_id") is not None:
            return None
        files += [CachedFile(path) for path in session.list(f"_indices/{index['uuid']}")]
    return files


class ObjectCache:
    """The mirror of one dataset (by uri) under a cache directory, in this process."""

    def __init__(self, uri: str, options: dict[str, str] | None, directory: Path,
                 max_bytes: int | None) -> None:
        self.uri, self.options = uri.rstrip("/"), options
        self.directory = directory
        self.root = directory / dataset_key(uri)
        self.max_bytes = max_bytes
        # A shared lock on the mirror's IN_USE file while this process reads from it: no
        # process evicts a file of a dataset being read (one fd per dataset, not per file).
        self._in_use: int | None = None
        self._held: set[Path] = set()
        self._lock = threading.Lock()
        self._filling: set[int] = set()

    # --- reading ------------------------------------------------------------------------

    def marker(self, version: int) -> Path:
        return self.root / MARKER_DIR / f"{version}.json"

    def complete(self, version: int) -> list[CachedFile] | None:
        """The version's files when every one is in the mirror, else None."""
        try:
            listed = json.loads(self.marker(version).read_text())
        except (OSError, ValueError):
            return None
        files = [CachedFile(rel, size) for rel, size in listed]
        if not all(_complete(self.root / file.rel, file.size) for file in files):
            return None  # a file was evicted since
        return files

    def open_local(self, version: int) -> Any:
        """The version opened from the mirror, or None while it is not all there."""
        files = self.complete(version)
        if files is None:
            return None
        import lance

        for file in files:  # held until this process ends: never evicted while read
            if not self.hold(self.root / file.rel):
                return None
        return lance.dataset(str(self.root), version=version)

    def data_file(self, path: str) -> Path | None:
        """The local copy of the data file `data/<path>` when complete (and now held)."""
        local = self.root / "data" / path
        return local if self.hold(local) else None

    def hold(self, path: Path) -> bool:
        """Whether a complete `path` is there, now protected from eviction for as long as this
        process lives (and marked used: its access time orders eviction)."""
        with self._lock:
            if path in self._held:
                return True
            if self._in_use is None:
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                    fd = os.open(self.root / IN_USE, os.O_RDWR | os.O_CREAT, 0o644)
                except OSError:
                    return False
                fcntl.flock(fd, fcntl.LOCK_SH)  # waits out an eviction running in it
                self._in_use = fd
            if not path.exists():  # checked under the lock: evicted before, or never there
                return False
            _touch(path)
            self._held.add(path)
            return True

    # --- filling ------------------------------------------------------------------------

    def start_filling(self, ds: Any) -> threading.Thread | None:
        """Download the version `ds` is at in a background thread (once per process)."""
        version = int(ds.version)
        with self._lock:
            if version in self._filling or self.complete(version) is not None:
                return None
            self._filling.add(version)
        thread = threading.Thread(target=self._fill_quietly, args=(ds,), daemon=True,
                                  name="loaderkit-cache-fill")
        thread.start()
        return thread

    def _fill_quietly(self, ds: Any) -> None:
        # A cache that cannot fill costs speed, never the epoch: the reads go to the store.
        with contextlib.suppress(Exception):
            self.fill(ds)

    def fill(self, ds: Any) -> bool:
        """Download every file of the version `ds` is at; True once the mirror holds it."""
        from concurrent.futures import ThreadPoolExecutor

        from lance.file import LanceFileSession

        version = int(ds.version)
        # Named in the store's logs (and the tests' proxy) as the cache's own requests.
        options = {"user_agent": USER_AGENT, **(self.options or {})}
        session = LanceFileSession(self.uri, storage_options=options)
        manifest = _manifest_name(session, version)
        files = version_files(ds, manifest) if manifest is not None else None
        indices = _index_files(ds, session)
        if files is None or indices is None:
            return False
        files += indices
        # Each process starts at its own place in the list, so processes filling at once
        # take different files first instead of queueing on the same lock.
        start = os.getpid() % len(files)
        order = files[start:] + files[:start]
        with ThreadPoolExecutor(FILL_THREADS, thread_name_prefix="loaderkit-cache") as pool:
            done = list(pool.map(lambda f: self._download(session, f), order))
        if not all(done):
            return False
        marker = self.marker(version)
        marker.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(marker, json.dumps([[f.rel, f.size] for f in files]).encode())
        return True

    def _download(self, session: Any, file: CachedFile) -> bool:
        """`file` into the mirror (at once, or by another process meanwhile): whether it is
        there now. Waits while another process downloads it."""
        target = self.root / file.rel
        if _complete(target, file.size):
            return True
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target.with_name(target.name + LOCK)):
            if _complete(target, file.size):  # another process finished it meanwhile
                return True
            reserved = target.with_name(target.name + RESERVE)
            if not self._make_room(file.size or 0, reserved):
                return False
            try:
                part = target.with_name(target.name + PART)
                if file.size is None:  # small files (manifest, deletions): one request
                    part.unlink(missing_ok=True)
                    session.download_file(file.rel, str(part))
                else:
                    _resume(session, file, part)
                os.replace(part, target)
                _touch(target)
            finally:
                reserved.unlink(missing_ok=True)
            if file.size is None:  # its size is known now: back under the bound
                self._make_room(0, None)
            return True

    def _make_room(self, size: int, reserved: Path | None) -> bool:
        """Evict least recently used complete files until `size` more bytes fit the bound,
        and reserve them (in `reserved`, while the caller downloads): downloads running at
        once, in any process, count what they will write."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with _locked(self.directory / ".budget.lock"):
            # What a killed download left (a part no process writes) counts, and leaves
            # first among files used as long ago: it is resumable, but maybe never resumed.
            files = list(_cached_files(self.directory)) + list(_stale_parts(self.directory))
            used = sum(stat.st_size for _, stat in files) + _reservations(self.directory)
            bound = self.max_bytes
            if bound is None:
                free = os.statvfs(self.directory)
                bound = used + free.f_bavail * free.f_frsize - RESERVE_BYTES
            if size > bound:
                return False
            for path, stat in sorted(files, key=lambda item: item[1].st_atime):
                if used + size <= bound:
                    break
                if _evict(path, self.directory):
                    used -= stat.st_size
            if used + size > bound:
                return False
            if reserved is not None:
                reserved.write_text(str(size))
            return True


def _manifest_name(session: Any, version: int) -> str | None:
    """The version's manifest in the store, under either of Lance's naming schemes."""
    for name in (f"_versions/{2**64 - 1 - version:020d}.manifest",
                 f"_versions/{version}.manifest"):
        if session.contains(name):
            return name
    return None


def _resume(session: Any, file: CachedFile, part: Path) -> None:
    """Append the pieces `part` lacks (what a killed download wrote is a correct prefix)."""
    assert file.size is not None
    with open(part, "ab") as out:
        have = out.tell()
        if have > file.size:  # not ours to trust: start over
            out.truncate(0)
            have = 0
        while have < file.size:
            data = session.read_range(file.rel, have, min(PIECE_BYTES, file.size - have))
            if not data:
                raise OSError(f"{file.rel}: the store returned nothing at byte {have}")
            out.write(data)
            out.flush()
            have += len(data)
        os.fsync(out.fileno())


def _complete(path: Path, size: int | None) -> bool:
    """Whether `path` is there (under its final name: complete) with the expected size."""
    try:
        found = path.stat().st_size
    except OSError:
        return False
    return size is None or found == size


def _touch(path: Path) -> None:
    """Mark `path` used now (its access time orders eviction; its modification time stays)."""
    with contextlib.suppress(OSError):
        stat = path.stat()
        os.utime(path, ns=(max(stat.st_atime_ns, _now_ns()), stat.st_mtime_ns))


def _now_ns() -> int:
    import time

    return time.time_ns()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive `fcntl` lock on `path` (created), shared by every process on the machine."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _evict(path: Path, directory: Path) -> bool:
    """Remove a complete file, or a part no download is writing, of a dataset no process is
    reading (holding that dataset's IN_USE lock, and a part's download lock, meanwhile)."""
    root = directory / path.relative_to(directory).parts[0]
    in_use = _unlocked(root / IN_USE)
    if in_use is None:
        return False
    writing = None
    try:
        if path.name.endswith(PART):
            writing = _unlocked(_download_lock(path, PART))
            if writing is None:
                return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(in_use)
        if writing is not None:
            os.close(writing)


def _unlocked(lock: Path) -> Any:
    """An fd holding `lock` exclusively when no process holds it, else None."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _download_lock(part_or_reserved: Path, suffix: str) -> Path:
    return part_or_reserved.with_name(part_or_reserved.name[:-len(suffix)] + LOCK)


def _stale_parts(directory: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Parts no download is writing (their process died): (path, stat)."""
    for part in directory.glob(f"*/**/*{PART}"):
        if MARKER_DIR in part.parts:
            continue
        fd = _unlocked(_download_lock(part, PART))
        if fd is None:
            continue
        os.close(fd)
        with contextlib.suppress(OSError):
            yield part, part.stat()


def _cached_files(directory: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every complete file under the cache directory (not parts, locks or markers)."""
    for root, _dirs, names in os.walk(directory):
        for name in names:
            if name.endswith((PART, LOCK, RESERVE)) or name.startswith(".") \
                    or MARKER_DIR in root:
                continue
            path = Path(root) / name
            with contextlib.suppress(OSError):
                yield path, path.stat()


def _reservations(directory: Path) -> int:
    """Bytes reserved by downloads running now. A reservation whose download lock is free
    was left by a process that died: it is removed, not counted."""
    total = 0
    for reserved in directory.glob(f"*/**/*{RESERVE}"):
        fd = _unlocked(_download_lock(reserved, RESERVE))
        if fd is None:  # held: a download is running
            with contextlib.suppress(OSError, ValueError):
                total += int(reserved.read_text() or 0)
            continue
        os.close(fd)
        reserved.unlink(missing_ok=True)
    return total


def _write_atomically(path: Path, data: bytes) -> None:
    part = path.with_name(f"{path.name}.{os.getpid()}{PART}")
    part.write_bytes(data)
    os.replace(part, path)


def usage(directory: Path, uri: str, version: int | None = None) -> tuple[int, int, bool]:
    """(files, bytes) of `uri`'s mirror under `directory`, and whether `version` is whole."""
    root = directory / dataset_key(uri)
    found = [stat.st_size for _, stat in _cached_files(root)] if root.exists() else []
    whole = version is not None and ObjectCache(uri, None, directory, None).complete(version) \
        is not None
    return len(found), sum(found), whole


_CACHES: dict[tuple[str, str, int | None], ObjectCache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(uri: str, options: dict[str, str] | None, directory: str | None,
              max_gb: float | None) -> ObjectCache:
    """This process's `ObjectCache` of `uri` under `directory` (default: `default_dir()`)."""
    where = Path(directory).expanduser() if directory else default_dir()
    max_bytes = int(max_gb * 2**30) if max_gb is not None else None
    key = (dataset_key(uri), str(where), max_bytes)
    with _CACHES_LOCK:
        if key not in _CACHES:
            _CACHES[key] = ObjectCache(uri, options, where, max_bytes)
        return _CACHES[key]


def read_from(uri: str, source: Any) -> str:
    """Where a source at `uri` is read from for its I/O defaults (storage.py): with a cache,
    the local copy (`file://`), where a block shuffle's small reads are cheap; else `uri`."""
    if getattr(source, "cache", None) is not None and not source.is_lancedb \
            and source.connection_factory is None and cacheable(uri):
        return "file://" + str(Path(_cache_dir(source) or default_dir()).expanduser())
    return uri


def for_source(source: Any) -> ObjectCache | None:
    """The cache of a `SourceSpec` with `cache` over an object store, in this process."""
    from loaderkit.runtime.sources import storage_options
    from loaderkit.vocabulary import resolve_text

    if getattr(source, "cache", None) is None or source.is_lancedb \
            or source.connection_factory is not None:
        return None
    uri = resolve_text(source.uri)
    if not cacheable(uri):
        return None
    return cache_for(uri, storage_options(source), _cache_dir(source), source.cache.max_gb)


def _cache_dir(source: Any) -> str | None:
    from loaderkit.vocabulary import resolve_optional

    return resolve_optional(source.cache.dir)


def opened(source: Any, open_remote: Any) -> Any:
    """The source's dataset: from the local copy when it holds the pinned version whole,
    else `open_remote()`, with the copy's filling started in the background."""
    from loaderkit.vocabulary import resolve_version

    cache = for_source(source)
    if cache is None:
        return open_remote()
    version = resolve_version(source.version)
    if isinstance(version, int):
        local = cache.open_local(version)
        if local is not None:
            return local
    ds = open_remote()
    cache.start_filling(ds)
    return ds


def data_file(ds: Any, path: str, source: Any) -> tuple[str, dict[str, str] | None, bool]:
    """Where a reader opens the data file `data/<path>` of `ds`: the local copy once it is
    complete there, else where `ds` is (with the source's storage options); and whether
    that is on this machine."""
    from loaderkit.runtime.sources import storage_options

    cache = for_source(source) if source is not None else None
    if cache is not None:
        local = cache.data_file(path)
        if local is not None:
            return str(local), None, True
    options = storage_options(source) if source is not None else None
    return f"{ds.uri.rstrip('/')}/data/{path}", options, not cacheable(ds.uri)


def has_copy(source: Any, fragment: Any) -> bool:
    """Whether the local copy holds the fragment's (one) data file complete by now."""
    cache = for_source(source) if source is not None else None
    files = fragment.data_files()
    return cache is not None and len(files) == 1 and \
        (cache.root / "data" / files[0].path).exists()
