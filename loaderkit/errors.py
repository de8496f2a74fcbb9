"""One diagnostic type, one error hierarchy, one place that formats locations.

Every stage (read, resolve, validate, plan, check, build) reports problems as
`Diagnostic`s that carry the `Location` of the YAML key or value that caused
them. Stages collect all they find; the entry points raise `RecipeError` with
the whole list, so a user sees every problem at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

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


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Diagnostic:
    location: Location
    code: str
    severity: Severity
    message: str
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        text = f"{self.location}: {self.severity} {self.code} {printable(self.message)}"
        return f"{text}\n  hint: {printable(self.hint)}" if self.hint else text


def sort_key(diagnostic: Diagnostic) -> tuple[Location, str]:
    return (diagnostic.location, diagnostic.code)


class LoaderkitError(Exception):
    """Base of every error loaderkit raises on purpose."""


@dataclass
class RecipeError(LoaderkitError):
    """A recipe has at least one error diagnostic; `diagnostics` lists them all."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def __str__(self) -> str:
        return "\n".join(str(d) for d in sorted(self.diagnostics, key=sort_key))
