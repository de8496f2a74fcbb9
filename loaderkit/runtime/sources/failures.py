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
from collections.abc import Iterator

from loaderkit.errors import RuntimeFailure, SourceError, engine_message
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import EnvValue, resolve_text


def describe(source: SourceSpec) -> str:
    """The source as the recipe wrote it: safe to print (an `${env:...}` uri stays a reference)."""
    where = repr(source.uri) if not isinstance(source.uri, str) else source.uri
    return f"{where} table {source.table!r}" if source.table else where


def _redact(text: str, source: SourceSpec | None) -> str:
    """`text` with the value of each `${env:...}` of `source` replaced by its reference.

    An engine's message may quote what it was given (a resolved uri, an option);
    values under 4 characters are left alone, as they cannot be told from ordinary text.
    """
    if source is None:
        return text
    refs = [source.uri, source.api_key, source.table, source.version, source.region,
            source.host_override, *source.storage_options.values()]
    for part in source.parts:  # a mixture: its sources, and their own filters
        text = _redact(text, part.source)
        refs.append(part.filter)
    for ref in refs:
        if isinstance(ref, EnvValue) and ref.is_secret:
            value = resolve_text(ref)
            if len(value) >= 4:
                text = text.replace(value, repr(ref))
    return text


def source_error(verb: str, source: SourceSpec | None, exc: BaseException) -> SourceError:
    """`SourceError("VERB SOURCE: MESSAGE")` for an engine error; chain it with `from exc`."""
    where = describe(source) if source is not None else "the source"
    return SourceError(f"{verb} {where}: {_redact(engine_message(exc), source)}")


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
        raise source_error("reading", source, exc) from exc


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


