"""Build-time checks of `tokenize:` and `pack:` (LK419-LK421), against the real tokenizer file
and data, each located at the recipe key that names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from loaderkit import RecipeError, load_recipe
from loaderkit.compiler import compile_recipe
from loaderkit.errors import Diagnostic
from tests.runtime.text_support import corpus, train_tokenizer, write_corpus
from tests.safety.support import line_col

RECIPE = """\
loaderkit: 1
source:
  uri: {uri}
columns: [id, text]
tokenize:
  {column}:
    tokenizer: {tokenizer}
    add_bos: {add_bos}
pack:
  column: {column}
  seq_len: 32
loader:
  batch_size: 2
"""


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text-build")
    texts = corpus(120)
    write_corpus(root / "corpus.lance", texts)
    train_tokenizer(root / "bpe.json", texts)  # has <s> and </s>
    train_tokenizer(root / "no_bos.json", texts, specials=["<pad>", "<unk>", "</s>"])
    (root / "broken.json").write_text("{\"not\": \"a tokenizer\"}")
    return root


def recipe(corpus_dir: Path, tmp_path: Path, tokenizer: str, column: str = "text",
           add_bos: str = "false") -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(uri=corpus_dir / "corpus.lance", column=column,
                                  tokenizer=tokenizer, add_bos=add_bos))
    return path


def errors_of(path: Path) -> list[tuple[str, int, int, str]]:
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path, probe=False)
    return [where(d) for d in caught.value.errors]


def where(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.location.file, d.location.line, d.location.column, d.code)


def test_a_tokenizer_relative_to_the_recipe_builds_and_packs(corpus_dir: Path) -> None:
    path = recipe(corpus_dir, corpus_dir, "bpe.json")  # the recipe beside the tokenizer
    batch = next(iter(load_recipe(path)))
    assert batch["input_ids"].shape == (2, 32)


def test_a_missing_tokenizer_is_lk419_at_its_key(corpus_dir: Path, tmp_path: Path) -> None:
    path = recipe(corpus_dir, tmp_path, str(corpus_dir / "nope.json"))
    assert errors_of(path) == [(str(path), *line_col(path, "tokenizer:"), "LK419")]


def test_a_file_that_is_no_tokenizer_is_lk419(corpus_dir: Path, tmp_path: Path) -> None:
    path = recipe(corpus_dir, tmp_path, str(corpus_dir / "broken.json"))
    assert errors_of(path) == [(str(path), *line_col(path, "tokenizer:"), "LK419")]


def test_add_bos_without_a_bos_token_is_lk420_at_add_bos(corpus_dir: Path,
                                                          tmp_path: Path) -> None:
    path = recipe(corpus_dir, tmp_path, str(corpus_dir / "no_bos.json"), add_bos="true")
    assert errors_of(path) == [(str(path), *line_col(path, "add_bos:"), "LK420")]


def test_tokenizing_a_number_column_is_lk421(corpus_dir: Path, tmp_path: Path) -> None:
    path = recipe(corpus_dir, tmp_path, str(corpus_dir / "bpe.json"), column="id")
    assert errors_of(path) == [(str(path), *line_col(path, "id:", value=False), "LK421")]


def test_build_says_other_columns_are_not_delivered(corpus_dir: Path) -> None:
    compiled = compile_recipe(recipe(corpus_dir, corpus_dir, "bpe.json"), probe=False)
    pack = compiled.plan.node("pack")
    assert "other columns are not delivered" in pack.settings["delivers"]


def test_a_tokenize_column_the_source_lacks_is_lk422(corpus_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"loaderkit: 1\nsource:\n  uri: {corpus_dir / 'corpus.lance'}\n"
                    f"tokenize:\n  txt:\n    tokenizer: {corpus_dir / 'bpe.json'}\n")
    assert errors_of(path) == [(str(path), *line_col(path, "txt:", value=False), "LK422")]
