"""Shared constants and helpers for the front-end tests."""

from __future__ import annotations

from loaderkit.errors import Diagnostic

# A minimal valid recipe: three lines, so that what a case appends starts on line 4.
HEAD = "loaderkit: 1\nsource:\n  uri: data/train.lance\n"

Where = tuple[str, int, int, str, str]  # file, line, column, code, severity


def where(d: Diagnostic) -> Where:
    return (d.location.file, d.location.line, d.location.column, d.code, str(d.severity))
