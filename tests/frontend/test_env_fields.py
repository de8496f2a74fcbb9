"""`${env:NAME,default}` in number, boolean and name fields: read at build as the field's type.

Cluster jobs set `batch_size`, `num_workers` or `seed` from the environment; such a
value is parsed as YAML reads a scalar and validated like a written one, and a bad one
is reported at the reference.
"""

from __future__ import annotations

from typing import Any

import pytest

from loaderkit.compiler import front, lint

from .support import HEAD, where


def recipe_of(path: Any) -> Any:
    _, recipe, problems = front(path)
    assert recipe is not None, "\n".join(map(str, problems))
    return recipe


def test_an_int_field_takes_the_variables_value(write: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_BS", "96")
    path = write("r.yaml", HEAD + "loader:\n  batch_size: ${env:LK_BS,8}\n")
    assert recipe_of(path).loader.batch_size == 96


def test_an_unset_variable_takes_the_default(write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LK_SEED", raising=False)
    path = write("r.yaml", HEAD + "sampler:\n  seed: ${env:LK_SEED,11}\n")
    assert recipe_of(path).sampler.seed == 11


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("false", False)])
def test_a_boolean_field_reads_yaml_booleans(write: Any, monkeypatch: pytest.MonkeyPatch,
                                             text: str, expected: bool) -> None:
    monkeypatch.setenv("LK_PIN", text)
    path = write("r.yaml", HEAD + "loader:\n  pin_memory: ${env:LK_PIN}\n")
    assert recipe_of(path).loader.pin_memory is expected


def test_a_name_field_reads_the_variable(write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_FMT", "numpy")
    path = write("r.yaml", HEAD + "format: ${env:LK_FMT}\n")
    assert recipe_of(path).format == "numpy"


def test_rank_and_world_size_read_numbers(write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_RANK", "1")
    path = write("r.yaml", HEAD + "sampler:\n  rank: ${env:LK_RANK}\n  world_size: 2\n")
    assert recipe_of(path).sampler.rank == 1


def test_a_bad_value_is_reported_at_the_reference_at_build(
        write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_BS", "lots")
    path = write("r.yaml", HEAD + "loader:\n  batch_size: ${env:LK_BS}\n")
    problems = front(path)[2]
    assert [where(d)[1:4] for d in problems] == [(5, 15, "LK202")]
    assert "${env:LK_BS}" in problems[0].message and "lots" not in str(problems[0])


def test_lint_checks_the_defaults_type(write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LK_NW", raising=False)
    path = write("r.yaml", HEAD + "loader:\n  num_workers: ${env:LK_NW,-1}\n")
    assert [d.code for d in lint([path])] == ["LK202"]


def test_cross_field_rules_see_the_value_read(write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_NW", "2")
    path = write("r.yaml", HEAD + "loader:\n  num_workers: ${env:LK_NW}\n"
                                  "  multiprocessing_context: fork\n")
    assert "LK207" in [d.code for d in front(path)[2]]


def test_lint_does_not_warn_unset_on_a_line_with_an_error(
        write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LK_T", raising=False)
    path = write("r.yaml", HEAD + "transform: ${env:LK_T}\n")
    assert [d.code for d in lint([path])] == ["LK107"]


def test_text_fields_keep_the_reference_for_the_worker(write: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_URI", "data/x.lance")
    path = write("r.yaml", "loaderkit: 1\nsource:\n  uri: ${env:LK_URI}\n")
    assert recipe_of(path).source.uri == "${env:LK_URI}"


def test_a_refused_worker_count_draws_no_second_error_about_worker_options(
        write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_NW", "abc")
    path = write("r.yaml", HEAD + "loader:\n  num_workers: ${env:LK_NW}\n  prefetch_factor: 2\n")
    assert [p.code for p in lint([path])] == ["LK202"]
