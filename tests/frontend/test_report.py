"""Renderers: text, JSON, GitHub workflow commands, SARIF 2.1.0 (docs/cli.md)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from loaderkit.compiler import lint
from loaderkit.errors import Diagnostic, Location, Severity
from loaderkit.report import render
from loaderkit.rules import RULES

from .support import HEAD

MIXED = HEAD + "loader:\n  batch_sise: 4\n  num_workers: 2\n  multiprocessing_context: fork\n" \
               "  allow_fork: true\n"


@pytest.fixture
def diagnostics(write: Any) -> list[Diagnostic]:
    found = lint([write("r.yaml", MIXED)])
    assert {d.code for d in found} == {"LK201", "LK506"}  # one error, one warning with a hint
    return found


def test_text_is_file_line_col_severity_code_message(diagnostics: list[Diagnostic]) -> None:
    lines = render(diagnostics, "text").splitlines()
    assert re.fullmatch(r".*r\.yaml:5:3: error LK201 unknown key 'batch_sise' in 'loader' "
                        r"\(did you mean 'batch_size'\?\)", lines[0])
    assert lines[1] == "  hint: rename it to 'batch_size'"


def test_text_is_sorted_by_position(write: Any) -> None:
    path = write("r.yaml", "loaderkit: 1\nsource:\n  uri: x\n  tabel: t\nformat: torchh\n")
    lines = [ln for ln in render(lint([path]), "text").splitlines() if not ln.startswith(" ")]
    assert [ln.split(": ")[0].rsplit(":", 2)[1] for ln in lines] == ["4", "5"]


def test_json_is_one_array_of_diagnostic_objects(diagnostics: list[Diagnostic]) -> None:
    items = json.loads(render(diagnostics, "json"))
    assert isinstance(items, list) and len(items) == 2
    for item in items:
        assert {"file", "line", "column", "code", "severity", "message"} <= set(item)
        assert set(item) <= {"file", "line", "column", "code", "severity", "message", "hint"}
        assert isinstance(item["line"], int) and isinstance(item["column"], int)
    error = next(i for i in items if i["code"] == "LK201")
    assert (error["line"], error["column"], error["severity"]) == (5, 3, "error")
    assert error["hint"] == "rename it to 'batch_size'"
    assert {i["severity"] for i in items} == {"error", "warning"}


def test_json_omits_hint_when_there_is_none() -> None:
    d = Diagnostic(Location("r.yaml", 2, 3), "LK209", Severity.ERROR, "no table")
    assert json.loads(render([d], "json")) == [
        {"file": "r.yaml", "line": 2, "column": 3, "code": "LK209", "severity": "error",
         "message": "no table"}]


def test_json_of_nothing_is_an_empty_array() -> None:
    assert json.loads(render([], "json")) == []


def test_github_prints_one_workflow_command_per_diagnostic(
        diagnostics: list[Diagnostic]) -> None:
    lines = render(diagnostics, "github").splitlines()
    assert len(lines) == 2
    pattern = r"::(error|warning) file=([^,]+),line=(\d+),col=(\d+)(,title=[^:]+)?::(.+)"
    parsed = [re.fullmatch(pattern, line) for line in lines]
    assert all(parsed), lines
    by_code = {m.group(6).split()[0]: m for m in parsed if m}
    assert by_code["LK201"].group(1, 3, 4) == ("error", "5", "3")
    assert by_code["LK201"].group(2).endswith("r.yaml")
    assert by_code["LK506"].group(1) == "warning"


def test_github_escapes_newlines_percent_and_property_separators() -> None:
    d = Diagnostic(Location("a,b:c.yaml", 1, 1), "LK001", Severity.ERROR, "50% bad\nnext")
    line = render([d], "github")
    assert line.count("\n") == 1
    assert line.startswith("::error file=a%2Cb%3Ac.yaml,line=1,col=1")
    assert "50%25 bad%0Anext" in line


def test_sarif_has_the_2_1_0_shape(diagnostics: list[Diagnostic]) -> None:
    log = json.loads(render(diagnostics, "sarif"))
    assert log["version"] == "2.1.0"
    assert "sarif" in log["$schema"]
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "loaderkit"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert sorted(rule_ids) == ["LK201", "LK506"]
    for r in driver["rules"]:
        assert r["name"] == RULES[r["id"]].name
        assert r["shortDescription"]["text"]
        assert re.match(r"https?://", r["helpUri"]), r["helpUri"]  # SARIF: an absolute URI
    assert len(run["results"]) == 2
    for result in run["results"]:
        assert result["ruleId"] in rule_ids
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note", "none")
        assert result["message"]["text"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"].endswith("r.yaml")
        region = physical["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    error = next(r for r in run["results"] if r["ruleId"] == "LK201")
    assert error["level"] == "error"
    assert error["locations"][0]["physicalLocation"]["region"] == {"startLine": 5,
                                                                  "startColumn": 3}


def test_sarif_of_nothing_is_a_valid_empty_run() -> None:
    log = json.loads(render([], "sarif"))
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []
