"""The user's own code, named in a recipe as "module:attribute": importing and calling it.

One place for both halves: the build stage imports a reference to check it, each
worker imports it to call it. A call that raises (or exits) becomes a `UserCodeError`
whose message carries the user's own frames (not loaderkit's, a library's, the
standard library's or DataLoader's), so the diagnostic at the recipe key can show
them, even from a worker. What the user's code does is theirs to get wrong, but
never to end loaderkit's process: `SystemExit` from an import or a call is caught
like any exception. Ctrl-C (`KeyboardInterrupt`) is not: it stays the user's to stop.
"""

from __future__ import annotations

import importlib
import os
import reprlib
import site
import sysconfig
import traceback
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from loaderkit.errors import LoaderkitError, SourceError, UserCodeError

PACKAGE = str(Path(__file__).resolve().parent)
T = TypeVar("T")

# What the user's code may raise that loaderkit reports rather than lets end the process.
USER_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit)


def import_reference(reference: str) -> Any:
    """Resolve "package.module:attribute" (dots allowed after the colon); raises what the
    import raises (ImportError, AttributeError, or whatever the module's top level does,
    `SystemExit` included)."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{reference!r} is not of the form 'module:attribute'")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def why_not_imported(reference: str, exc: BaseException) -> str:
    """What importing `reference` raised, for a message (a script without a main guard
    exits when imported: that is said as such, not as "SystemExit")."""
    if isinstance(exc, SystemExit):
        module = reference.partition(":")[0]
        return f"importing module '{module}' called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def import_attr(reference: str, error: type[LoaderkitError] = SourceError) -> Any:
    """`import_reference` for the runtime: a failure is `error` (the `UserCodeError` of the
    recipe key that named it, or a `SourceError`) naming the reference."""
    try:
        return import_reference(reference)
    except USER_FAILURES as exc:
        summary = f"cannot import {reference!r}: {why_not_imported(reference, exc)}"
        frames = user_frames(exc) if issubclass(error, UserCodeError) else ""
        raise error(_one_line(summary) + (f"\n{frames}" if frames else "")) from exc


@cache
def _library_roots() -> tuple[str, ...]:
    """Where installed code lives: the standard library and every site-packages."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(getattr(site, "getsitepackages", list)())
    roots.add(site.getusersitepackages())
    roots.add(PACKAGE)
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots if r)


def is_users(filename: str) -> bool:
    """Whether a frame's file is the user's own: not frozen or generated (`<frozen os>`,
    `<string>`), not in the standard library, a site-packages or loaderkit itself."""
    if filename.startswith("<"):
        return False
    parts = Path(filename).parts
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not os.path.realpath(filename).startswith(_library_roots())


def user_frames(exc: BaseException) -> str:
    """The traceback lines of `exc` in the user's own files (`is_users`), and only those."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_users(f.filename)]
    return "".join(traceback.format_list(frames)).rstrip("\n")


def call_user(error: type[UserCodeError], reference: str, function: Callable[..., T],
              *args: Any) -> T:
    """`function(*args)`, where `function` is what `reference` names: what it raises (or a
    `sys.exit` in it) comes out as `error` (TransformError, FactoryError) with the user's
    frames in its message."""
    try:
        return function(*args)
    except (LoaderkitError, MemoryError):
        raise
    except USER_FAILURES as exc:
        what = f"{_role(error)} {reference!r}"
        if isinstance(exc, SystemExit):
            summary = f"{what} called sys.exit({exc.code!r})"
        else:
            summary = f"{what} raised {type(exc).__name__}: {exc}"
        frames = user_frames(exc)
        raise error(_one_line(summary) + (f"\n{frames}" if frames else "")) from exc


def returned_wrong(error: type[UserCodeError], reference: str, value: Any, expected: str,
                   *, hint: str = "") -> UserCodeError:
    """`error` saying that the function `reference` names returned `value`, not `expected`.

    The value is described by its type and a short repr, except text, which is described
    by its length alone: what a factory returns in place of a table is often a connection
    string, and may hold a credential.
    """
    if isinstance(value, str | bytes):
        shown = f"a {type(value).__name__} of {len(value)} characters"
    elif value is None or isinstance(value, bool | int | float):
        shown = repr(value)
    else:
        kind = type(value)
        shown = f"a {kind.__module__}.{kind.__qualname__} ({_short_repr(value)})"
    summary = f"{_role(error)} {reference!r} returned {shown}, not {expected}"
    return error(_one_line(summary + (f"; {hint}" if hint else "")))


def _role(error: type[UserCodeError]) -> str:
    """What the recipe calls the function: `transform`, `connection_factory`."""
    return error.recipe_key.rsplit(".", 1)[-1]


def _short_repr(value: Any) -> str:
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = 40
    try:
        return shortener.repr(value)
    except Exception:  # a user's __repr__ that raises
        return "no repr"


def _one_line(text: str) -> str:
    # The first line of a UserCodeError's message is its summary; frames follow it.
    return text.replace("\n", " ")
