"""Diagnostics rendered for people and tools: text, JSON, GitHub workflow commands, SARIF 2.1.0."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from loaderkit.errors import Diagnostic, sort_key
from loaderkit.rules import RULES

FORMATS = ("text", "json", "github", "sarif")
HOME = "https://github.com/loaderkit/loaderkit"
RULES_PAGE = f"{HOME}/blob/main/docs/rules.md"  # SARIF wants absolute URIs


def render(diagnostics: Sequence[Diagnostic], fmt: str) -> str:
    ordered = sorted(diagnostics, key=sort_key)
    return {"text": _text, "json": _json, "github": _github, "sarif": _sarif}[fmt](ordered)


def as_dict(d: Diagnostic) -> dict[str, Any]:
    item: dict[str, Any] = {"file": d.location.file, "line": d.location.line,
                            "column": d.location.column, "code": d.code,
                            "severity": str(d.severity), "message": d.message}
    if d.hint:
        item["hint"] = d.hint
    return item


def _text(diagnostics: list[Diagnostic]) -> str:
    return "".join(f"{d}\n" for d in diagnostics)


def _json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([as_dict(d) for d in diagnostics], indent=2) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(diagnostics: list[Diagnostic]) -> str:
    lines = []
    for d in diagnostics:
        message = f"{d.code} {d.message}" + (f" (hint: {d.hint})" if d.hint else "")
        lines.append(f"::{d.severity} file={_escape_property(d.location.file)},"
                     f"line={d.location.line},col={d.location.column},"
                     f"title={d.code}::{_escape_data(message)}\n")
    return "".join(lines)


def _sarif(diagnostics: list[Diagnostic]) -> str:
    used = sorted({d.code for d in diagnostics})
    rules = [{"id": code, "name": RULES[code].name,
              "shortDescription": {"text": RULES[code].catches},
              "fullDescription": {"text": RULES[code].why},
              "helpUri": f"{RULES_PAGE}#{code.lower()}",
              "defaultConfiguration": {"level": str(RULES[code].severity)}} for code in used]
    results = [{
        "ruleId": d.code,
        "ruleIndex": used.index(d.code),
        "level": str(d.severity),
        "message": {"text": d.message + (f" (hint: {d.hint})" if d.hint else "")},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": d.location.file},
            "region": {"startLine": d.location.line, "startColumn": d.location.column},
        }}],
    } for d in diagnostics]
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "loaderkit", "informationUri": HOME,
                                      "rules": rules}},
                  "results": results}],
    }
    return json.dumps(log, indent=2) + "\n"
