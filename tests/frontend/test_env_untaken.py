"""Text keys that take no `${env:}` reference (LK107), and filters with a query parameter
(LK403), refused offline at the key instead of reaching the importer or the engine as the
literal text `${env:...}` or `$1`."""

from __future__ import annotations

from typing import Any

import pytest

from loaderkit.compiler import lint

from .support import HEAD, where


@pytest.mark.parametrize(("text", "line", "column"), [
    ("name: ${env:LK_X}\n", 4, 7),
    ("split: ${env:LK_X}\nsplits: {by: id, fractions: {a: 1}}\n", 4, 8),
    ("splits:\n  by: ${env:LK_X}\n  fractions: {a: 1}\n", 5, 7),
    ("transform: ${env:LK_X}\n", 4, 12),
    ("columns: [id, '${env:LK_X}']\n", 4, 15),
])
def test_a_reference_under_a_key_that_takes_none_is_refused_at_it(
        write: Any, monkeypatch: pytest.MonkeyPatch, text: str, line: int, column: int) -> None:
    monkeypatch.setenv("LK_X", "a")
    path = write("r.yaml", HEAD + text)
    assert [where(d) for d in lint([path])] == [(str(path), line, column, "LK107", "error")]


def test_a_reference_as_connection_factory_is_refused_at_it(
        write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_X", "a:b")
    path = write("r.yaml", HEAD + "  connection_factory: ${env:LK_X}\n")
    assert [where(d)[1:4] for d in lint([path])] == [(4, 23, "LK107")]


def test_a_reference_as_extends_is_refused_at_it(write: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_X", "base.yaml")
    write("base.yaml", HEAD)
    path = write("r.yaml", "loaderkit: 1\nextends: ${env:LK_X}\n")
    assert [where(d)[1:4] for d in lint([path])] == [(2, 10, "LK107")]


def test_the_message_names_the_key_not_the_value(write: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_X", "s3cr3t-value")
    path = write("r.yaml", HEAD + "transform: ${env:LK_X}\n")
    [found] = lint([path])
    assert found.code == "LK107" and "'transform'" in found.message
    assert "s3cr3t-value" not in str(found)


@pytest.mark.parametrize(("text", "line", "column"), [
    (HEAD + 'filter: "id > $1"\n', 4, 15),
    ("loaderkit: 1\nsources:\n  a: {uri: a.lance, filter: 'x = ${y}'}\n", 3, 34),
])
def test_a_query_parameter_in_a_filter_is_refused_at_its_dollar(
        write: Any, text: str, line: int, column: int) -> None:
    path = write("r.yaml", text)
    assert [where(d)[1:4] for d in lint([path])] == [(line, column, "LK403")]


def test_a_whole_filter_reference_lints_clean(write: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_F", "id > 1")
    path = write("r.yaml", HEAD + "filter: ${env:LK_F}\ncolumns: {x: '${env:LK_F}'}\n")
    assert lint([path]) == []
