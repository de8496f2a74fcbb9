"""One diagnostic type, one error hierarchy, one place that formats locations.

Every stage (read, resolve, validate, plan, check, build) reports problems as
`Diagnostic`s that carry the `Location` of the YAML key or value that caused
them. Stages collect all they find; the entry points raise `RecipeError` with
the whole list, so a user sees every problem at once.

Everything loaderkit raises on purpose, while compiling a recipe or while
loading batches, derives from `LoaderkitError`. This module imports nothing
heavy: `lint` and `from loaderkit import SourceError` never load torch or lance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]|\n")


def printable(text: str) -> str:
    """Text safe for a terminal or CI log: a recipe's keys must not inject escape codes,
    line breaks (fake diagnostics, `::error::` workflow commands) or bells."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


@dataclass(frozen=True, order=True)
class Location:
    """A 1-based position in a recipe file, or in an override (`<--set KEY>`)."""

    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{printable(self.file)}:{self.line}:{self.column}"


def inside_value(where: Location, offset: int) -> Location:
    """The location `offset` characters into the single-line scalar that starts at `where`
    (a place inside a filter: where the engine stopped reading it)."""
    try:
        line = Path(where.file).read_text(encoding="utf-8").splitlines()[where.line - 1]
    except (OSError, ValueError, IndexError):
        return where  # an override: no file to look into
    start = where.column - 1
    if line[start:start + 1] in ("'", '"'):
        start += 1  # a quoted scalar: its text begins after the quote
    return Location(where.file, where.line, start + offset + 1)


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Diagnostic:
    """One problem, located. `file`, `line`, `column`, `code`, `severity`, `message` and
    `hint` are the names `lint --format json` uses (docs/python.md)."""

    location: Location
    code: str
    severity: Severity
    message: str
    hint: str | None = None

    @property
    def file(self) -> str:
        return self.location.file

    @property
    def line(self) -> int:
        return self.location.line

    @property
    def column(self) -> int:
        return self.location.column

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        text = f"{self.location}: {self.severity} {self.code} {printable(self.message)}"
        if not self.hint:
            return text
        # A hint may span lines (a user's traceback frames): each is made printable on
        # its own and indented, so none can pass for a diagnostic or a workflow command.
        first, *rest = self.hint.split("\n")
        return "\n".join([text, f"  hint: {printable(first)}",
                          *(f"    {printable(line)}" for line in rest)])


def sort_key(diagnostic: Diagnostic) -> tuple[Location, str]:
    return (diagnostic.location, diagnostic.code)


def unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Each diagnostic once, in first-seen order (a base shared by many children, a check
    that two stages both run)."""
    return list(dict.fromkeys(diagnostics))


class LoaderkitError(Exception):
    """Base of every error loaderkit raises on purpose."""


@dataclass
class RecipeError(LoaderkitError):
    """A recipe has at least one error diagnostic; `diagnostics` lists them all."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.diagnostics = unique(self.diagnostics)
        super().__init__(str(self))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def __str__(self) -> str:
        return "\n".join(str(d) for d in sorted(self.diagnostics, key=sort_key))


class RuntimeFailure(LoaderkitError):
    """Base of what the loader raises while it builds or delivers batches."""

    # Raised in a DataLoader worker: the worker's traceback (the message says which worker).
    worker_traceback: str | None = None


class FormatError(RuntimeFailure):
    """A column cannot be represented in the requested batch format."""


class DecodeError(RuntimeFailure):
    """A value of a `decode:` column could not be decoded (a corrupt or truncated image)."""


class ResumeError(RuntimeFailure):
    """A saved loader state cannot be continued exactly by this loader."""


class SourceError(RuntimeFailure):
    """The data source cannot be opened or read the way the recipe asks."""

    # An engine's error: its text (redacted), without the verb and source the message adds.
    reason: str | None = None


class SamplerError(RuntimeFailure):
    """The sampler settings cannot be planned (a rank outside the world, no batch size)."""


class CacheBudgetError(RuntimeFailure):
    """Shuffle `cache` mode would hold more than `cache_mb` in memory."""


class MissingEnvError(RuntimeFailure):
    """An `${env:NAME}` with no default is unset in this process."""


class WorkerDied(RuntimeFailure):
    """A DataLoader worker process ended mid-epoch without saying why (killed by a
    signal, often the out-of-memory killer's SIGKILL, or an exit of its own).

    `worker_id`, `pid`, `signal` (a name such as "SIGKILL", or None) and `exitcode`
    say which and how. The batches delivered before it stay counted:
    `loader.state_dict()` taken now resumes the epoch exactly.
    """

    def __init__(self, message: str, *, worker_id: int | None = None, pid: int | None = None,
                 signal: str | None = None, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.worker_id, self.pid, self.signal, self.exitcode = worker_id, pid, signal, exitcode


class UserCodeError(RuntimeFailure):
    """The user's own code, named by the recipe key `recipe_key`, raised.

    The message is one line saying what raised, then the user's own frames: a
    DataLoader worker's error reaches the main process as its message alone, so
    everything a diagnostic needs travels in it.
    """

    recipe_key = ""

    @property
    def summary(self) -> str:
        return str(self).split("\n", 1)[0]

    @property
    def frames(self) -> str:
        return str(self).partition("\n")[2]


class TransformError(UserCodeError):
    """The recipe's `transform` raised."""

    recipe_key = "transform"


class FactoryError(UserCodeError):
    """The recipe's `source.connection_factory` raised."""

    recipe_key = "source.connection_factory"


# Lance appends the Rust source locations of an error: ", /path/to/file.rs:335:56, ...".
_ENGINE_LOCATION = re.compile(r",\s*(/|[A-Za-z]:\\)\S+\.rs:\d+:\d+.*$", re.DOTALL)


def engine_message(exc: BaseException) -> str:
    """An engine's error text without the Rust source locations it appends."""
    text = _ENGINE_LOCATION.sub("", str(exc).strip()).strip()
    return text.removeprefix("Invalid user input: ") or type(exc).__name__
