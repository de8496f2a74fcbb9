"""Messages that say what to change: where a relative path was looked for, what the demo
needs, misplaced keys, a scalar where a list belongs, a selection with no rows."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit import RecipeError
from loaderkit.compiler import compile_recipe, front

Write = Callable[..., Path]


def error_of(path: Path) -> object:
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path, probe=False)
    [error] = caught.value.errors
    return error


def test_lk401_keeps_an_absolute_paths_leading_slash_and_says_it_once(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(f"loaderkit: 1\nsource:\n  uri: {tmp_path}/nope.lance\n")
    error = error_of(path)
    assert error.message == f"no Lance dataset at '{tmp_path}/nope.lance'"  # type: ignore[attr-defined]


def test_lk401_for_a_relative_path_names_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("r.yaml").write_text("loaderkit: 1\nsource:\n  uri: data/nope.lance\n")
    assert str(tmp_path) in error_of(Path("r.yaml")).hint  # type: ignore[attr-defined]


def test_lk401_says_where_a_relative_path_does_exist(tmp_path: Path, build_data: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # recipes/ holds the recipe, the data sits beside recipes/: run from recipes/.
    (tmp_path / "recipes").mkdir()
    (tmp_path / "data").symlink_to(build_data)
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.write_text("loaderkit: 1\nsource:\n  uri: data/items.lance\ncolumns: [id]\n")
    monkeypatch.chdir(tmp_path / "recipes")
    hint = error_of(Path("r.yaml")).hint  # type: ignore[attr-defined]
    assert f"exists under {tmp_path}" in hint
    monkeypatch.chdir(tmp_path)
    assert not any(d.is_error for d in compile_recipe(recipe, probe=False).diagnostics)


def test_lk401_for_missing_demo_data_suggests_loaderkit_demo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("r.yaml").write_text("loaderkit: 1\nsource:\n  uri: demo/diffusiondb_train.lance\n")
    assert "loaderkit demo" in error_of(Path("r.yaml")).hint  # type: ignore[attr-defined]


def test_a_scalar_columns_suggests_a_list(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("loaderkit: 1\nsource:\n  uri: x.lance\ncolumns: image_emb\n")
    [problem] = front(path)[2]
    assert (problem.code, problem.hint) == ("LK202", "columns is a list: columns: [image_emb]")


@pytest.mark.parametrize(("key", "says"), [("loader:\n  shuffle: true\n", "sampler.type: shuffle"),
                                           ("loader:\n  seed: 3\n", "sampler.seed"),
                                           ("sampler:\n  batch_size: 8\n", "loader.batch_size")])
def test_a_key_in_the_wrong_section_points_to_its_home(tmp_path: Path, key: str,
                                                       says: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("loaderkit: 1\nsource:\n  uri: x.lance\n" + key)
    [problem] = front(path)[2]
    assert problem.code == "LK201" and says in (problem.hint or "")
    assert (problem.line, problem.column) == (5, 3)


@pytest.mark.parametrize("empty", ["[]", "{}"])
def test_empty_columns_is_an_error(tmp_path: Path, empty: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(f"loaderkit: 1\nsource:\n  uri: x.lance\ncolumns: {empty}\n")
    [problem] = front(path)[2]
    assert (problem.code, problem.line, problem.column) == ("LK202", 4, 10)


def test_a_filter_that_matches_no_row_warns_lk410_at_the_filter(write_recipe: Write) -> None:
    path = write_recipe("loaderkit: 1\nsource:\n  uri: {data}/items.lance\ncolumns: [id]\n"
                        "filter: \"id < 0\"\n")
    compiled = compile_recipe(path, probe=False)
    [warning] = compiled.diagnostics
    assert (warning.code, warning.severity, warning.line) == ("LK410", "warning", 5)
    assert list(compiled.loader) == []


def test_a_filter_that_matches_rows_does_not_warn(write_recipe: Write) -> None:
    path = write_recipe("loaderkit: 1\nsource:\n  uri: {data}/items.lance\ncolumns: [id]\n"
                        "filter: \"id < 10\"\n")
    assert compile_recipe(path, probe=False).diagnostics == []


def test_cd_recipes_and_build_says_what_to_do(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-m", "loaderkit", "build", "train.yaml"],
                            cwd=repo / "recipes", capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 1
    assert "LK401" in result.stdout and "relative to the working directory" in result.stdout
