"""Engine errors while opening or reading a source, as `SourceError`s that name the source.

Every engine error, while opening or while reading (a data file deleted or
corrupted mid-epoch, an object store that stops answering), is raised as a
`SourceError` that names the source as the recipe wrote it, without the
engine's Rust source locations and without the value of any `${env:...}`.
"""

from __future__ import annotations

import builtins
import contextlib
import re
import signal
import warnings
from collections.abc import Iterator
from typing import Any, TypeVar

from loaderkit.errors import RuntimeFailure, SourceError, UserCodeError, engine_message
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import Redactor

E = TypeVar("E", bound=BaseException)


def describe(source: SourceSpec) -> str:
    """The source as the recipe wrote it: safe to print (an `${env:...}` uri stays a reference)."""
    where = repr(source.uri) if not isinstance(source.uri, str) else source.uri
    return f"{where} table {source.table!r}" if source.table else where


def redactor(source: SourceSpec | None) -> Redactor:
    """Replaces the values of the `${env:...}` settings of `source` (every source of a
    mixture), as this process read them, by their references (vocabulary.Redactor)."""
    if source is None:
        return Redactor(())
    specs = [source, *(part.source for part in source.parts)]
    filters = [part.filter for part in source.parts]  # a mixture's sources' own filters
    return Redactor.of_texts([*filters, *(t for s in specs for t in (
        s.uri, s.api_key, s.table, s.version, s.region, s.host_override,
        *s.storage_options.values()))])


def source_error(verb: str, source: SourceSpec | None, exc: BaseException) -> SourceError:
    """`SourceError("VERB SOURCE: MESSAGE")` for an engine error, its message redacted.

    Raise it `from error.__cause__`: that is `exc`, unless the text of `exc` quotes a secret
    (a traceback, or a worker's, would print it), and then None.
    """
    where = describe(source) if source is not None else "the source"
    error = unchained(SourceError(f"{verb} {where}: {engine_message(exc)}"), exc, source)
    error.reason = redactor(source)(engine_message(exc))
    return error


def unchained(error: E, exc: BaseException, source: SourceSpec | None) -> E:
    """`error` with its message redacted for `source`; chained to `exc` (its cause) only
    where the text of `exc` holds no secret."""
    redact = redactor(source)
    message = str(error)
    clean = type(error)(redact(message)) if redact(message) != message else error
    secret_inside = any(redact(str(e)) != str(e) for e in _chain(exc))
    clean.__cause__ = None if secret_inside else exc
    clean.__suppress_context__ = True
    return clean


def user_code_error(exc: UserCodeError, source: SourceSpec | None) -> UserCodeError:
    """`exc`, what the user's code (a factory handed the uri, a transform that reads the
    environment) raised, with no value of `source`'s `${env:...}` settings in its text.

    Raise it `from error.__cause__`: the user's exception, unless that quotes a secret."""
    return unchained(exc, exc.__cause__ or exc, source)


@contextlib.contextmanager
def redacted_warnings(redact: Redactor) -> Iterator[None]:
    """Show the warnings raised inside (by a transform) with no value `redact` knows in
    their text.

    Only how a warning is shown changes (`warnings.showwarning`): the user's filters, and
    the once-per-place registry they keep, work as they would without it."""
    if not redact:
        yield
        return
    show = warnings.showwarning

    def show_redacted(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
        clean = redact(str(message))
        show(message if clean == str(message) else clean, category, filename, lineno, file,
             line)

    warnings.showwarning = show_redacted
    try:
        yield
    finally:
        warnings.showwarning = show


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


@contextlib.contextmanager
def reading(source: SourceSpec | None) -> Iterator[None]:
    """Raise the engine's errors inside the block as a `SourceError` naming `source`.

    The runtime's own errors pass unchanged, and so does `MemoryError`, which is
    the host's problem rather than the source's, and so does what a signal handler
    raised while the engine was reading (DataLoader's SIGCHLD handler reporting a
    dead worker, a user's alarm timeout).
    """
    try:
        yield
    except (RuntimeFailure, MemoryError):
        raise
    except Exception as exc:  # Lance/Arrow raise ArrowInvalid, OSError, ValueError...
        if _raised_by_signal_handler(exc):
            raise
        crossed = _python_error_inside(exc)
        if crossed is not None:
            raise crossed from exc
        error = source_error("reading", source, exc)
        raise error from error.__cause__


# A Python exception that crossed the engine: Lance runs the signal handlers while it
# reads and passes on what they raise as "External error: RuntimeError: ...".
_CROSSED = re.compile(r"External error: (\w+)(?:: (.*))?$", re.DOTALL)


def _python_error_inside(exc: BaseException) -> BaseException | None:
    """The builtin exception (KeyboardInterrupt, RuntimeError...) an engine error wraps."""
    match = _CROSSED.match(engine_message(exc))
    kind = getattr(builtins, match.group(1), None) if match else None
    if match is None or not (isinstance(kind, type) and issubclass(kind, BaseException)):
        return None
    try:
        return kind(match.group(2)) if match.group(2) else kind()
    except Exception:  # a builtin that takes other arguments
        return None


def _raised_by_signal_handler(exc: BaseException) -> bool:
    """Whether `exc` came out of a Python signal handler (found in its traceback)."""
    handlers = set()
    for signum in signal.valid_signals():
        with contextlib.suppress(ValueError, OSError):
            handler = signal.getsignal(signum)
            if callable(handler):
                function = getattr(handler, "__func__", handler)  # a bound method's function
                code = getattr(function, "__code__", None)
                if code is None:  # a callable object
                    code = getattr(type(handler).__call__, "__code__", None)
                if code is not None:
                    handlers.add(code)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in handlers:
            return True
        tb = tb.tb_next
    return False


