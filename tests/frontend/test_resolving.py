"""Stage 2: extends, overrides and ${env:} references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loaderkit.compiler import front, lint
from loaderkit.resolving import resolve

from .support import HEAD


def test_extends_deep_merges_mappings_and_child_wins(write: Any) -> None:
    write("base.yaml", HEAD + "loader:\n  batch_size: 8\n  num_workers: 2\n")
    child = write("child.yaml", "extends: base.yaml\nloader:\n  num_workers: 4\n")
    document, problems = resolve(child)
    assert problems == [] and document is not None
    assert document.data["loader"] == {"batch_size": 8, "num_workers": 4}
    assert document.data["source"] == {"uri": "data/train.lance"}


def test_extends_lists_replace(write: Any) -> None:
    write("base.yaml", HEAD + "columns: [a, b, c]\n")
    child = write("child.yaml", "extends: base.yaml\ncolumns: [z]\n")
    document, _ = resolve(child)
    assert document is not None and document.data["columns"] == ["z"]


def test_extends_values_keep_the_file_they_came_from(write: Any) -> None:
    base = write("base.yaml", HEAD + "loader:\n  batch_size: 8\n")
    child = write("child.yaml", "extends: base.yaml\nloader:\n  num_workers: 4\n")
    document, _ = resolve(child)
    assert document is not None
    assert str(document.locate(("loader", "batch_size"))) == f"{base}:5:15"
    assert str(document.locate(("loader", "num_workers"))) == f"{child}:3:16"


def test_extends_chain_of_three(write: Any) -> None:
    write("a.yaml", HEAD + "loader:\n  batch_size: 2\n")
    write("b.yaml", "extends: a.yaml\nloader:\n  num_workers: 1\n")
    c = write("c.yaml", "extends: b.yaml\nsampler:\n  seed: 7\n")
    document, problems = resolve(c)
    assert problems == [] and document is not None
    assert document.data["loader"] == {"batch_size": 2, "num_workers": 1}
    assert document.data["sampler"] == {"seed": 7}


def test_extends_empty_mapping_keeps_the_base_section(write: Any) -> None:
    write("base.yaml", HEAD + "loader:\n  batch_size: 8\n")
    child = write("child.yaml", "extends: base.yaml\nloader: {}\n")
    document, _ = resolve(child)
    assert document is not None and document.data["loader"] == {"batch_size": 8}


def test_extends_child_mapping_replaces_a_base_scalar(write: Any) -> None:
    write("base.yaml", HEAD + "loader: 5\n")
    child = write("child.yaml", "extends: base.yaml\nloader:\n  batch_size: 4\n")
    document, _ = resolve(child)
    assert document is not None and document.data["loader"] == {"batch_size": 4}
    assert lint([child]) == []


def test_extends_missing_base_is_named_as_written(write: Any, tmp_path: Path) -> None:
    child = write("sub/child.yaml", "loaderkit: 1\nextends: ../bsae.yaml\n")
    problems = [d for d in lint([child]) if d.code == "LK101"]
    assert len(problems) == 1
    assert str(tmp_path / "bsae.yaml") in problems[0].message


@pytest.mark.parametrize("base", ["a\\0b.yaml", "x" * 5000 + ".yaml", "", "."])
def test_extends_impossible_path_is_a_diagnostic(base: str, write: Any) -> None:
    child = write("child.yaml", f'loaderkit: 1\nextends: "{base}"\nsource:\n  uri: x\n')
    assert [(d.code, d.location.line) for d in lint([child])] == [("LK101", 2)]


def test_name_defaults_to_the_file_stem(write: Any) -> None:
    document, _ = resolve(write("my-run.yaml", HEAD))
    assert document is not None and document.data["name"] == "my-run"


def test_set_values_are_parsed_as_yaml_scalars(write: Any) -> None:
    path = write("r.yaml", HEAD)
    document, _ = resolve(path, ["loader.num_workers=8", "loader.pin_memory=true",
                                 "source.uri=a,b", "sampler.seed=3"])
    assert document is not None
    assert document.data["loader"] == {"num_workers": 8, "pin_memory": True}
    assert document.data["source"]["uri"] == "a,b"
    assert document.data["sampler"] == {"seed": 3}


def test_overrides_dict_sets_dotted_keys(write: Any) -> None:
    path = write("r.yaml", HEAD)
    _, recipe, problems = front(path, {"loader.num_workers": 2, "loader.batch_size": 16})
    assert problems == [] and recipe is not None
    assert (recipe.loader.num_workers, recipe.loader.batch_size) == (2, 16)


def test_env_with_default_is_not_reported(write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LK_TEST_URI", raising=False)
    path = write("r.yaml", "loaderkit: 1\nsource:\n  uri: ${env:LK_TEST_URI,data/x.lance}\n")
    assert front(path, require_env=True)[2] == []


def test_env_set_is_not_reported_and_not_substituted(write: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_TEST_URI", "data/secret-place.lance")
    path = write("r.yaml", "loaderkit: 1\nsource:\n  uri: ${env:LK_TEST_URI}\n")
    document, recipe, problems = front(path, require_env=True)
    assert problems == []
    assert recipe is not None and recipe.source.uri == "${env:LK_TEST_URI}"
    assert "secret-place" not in repr(document) + repr(recipe)
