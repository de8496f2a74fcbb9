"""A secret written in a recipe or an override is reported, and never repeated in any output."""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaderkit.compiler import front, lint
from loaderkit.errors import RecipeError
from loaderkit.report import FORMATS, render
from loaderkit.vocabulary import Redactor

from .support import HEAD

SECRET = "sk-live-Zq8X1vT4pLr9Wm2"
SECRET_RECIPES = {
    "api-key": "loaderkit: 1\nsource:\n  uri: db://p\n  table: t\n  api_key: {s}\n",
    "api-key-on-lance": "loaderkit: 1\nsource:\n  uri: data/x.lance\n  api_key: {s}\n",
    "storage-option": "loaderkit: 1\nsource:\n  uri: s3://b/t.lance\n  storage_options:\n"
                      "    aws_secret_access_key: {s}\n",
    "option-named-password": "loaderkit: 1\nsource:\n  uri: s3://b/t.lance\n"
                             "  storage_options:\n    db_password: '{s}'\n",
    "api-key-wrong-type": "loaderkit: 1\nsource:\n  uri: db://p\n  table: t\n  api_key: [{s}]\n",
    "partial-env": "loaderkit: 1\nsource:\n  uri: db://p\n  table: t\n"
                   "  api_key: {s}${{env:SUFFIX,x}}\n",
    "with-other-errors": "loaderkit: 1\nsource:\n  uri: db://p\n  api_key: {s}\n  tabel: t\n"
                         "format: torchh\n",
}


def every_output(diagnostics: list[Any]) -> str:
    return "\n".join([render(diagnostics, fmt) for fmt in FORMATS]
                     + [str(RecipeError(diagnostics)), repr(diagnostics)])


@pytest.mark.parametrize("name", list(SECRET_RECIPES))
def test_secret_in_recipe_is_reported_but_never_printed(name: str, write: Any) -> None:
    path = write(f"{name}.yaml", SECRET_RECIPES[name].format(s=SECRET))
    diagnostics = lint([path])
    assert "LK301" in {d.code for d in diagnostics}
    assert SECRET not in every_output(diagnostics)


def test_secret_in_override_is_reported_but_never_printed(write: Any) -> None:
    path = write("r.yaml", "loaderkit: 1\nsource:\n  uri: db://p\n  table: t\n")
    _, _, diagnostics = front(path, [f"source.api_key={SECRET}",
                                     f"source.storage_options.token={SECRET}"])
    assert [d.code for d in diagnostics] == ["LK301", "LK301"]
    assert SECRET not in every_output(diagnostics)


def test_secret_of_wrong_type_in_overrides_dict_is_never_printed(write: Any) -> None:
    path = write("r.yaml", "loaderkit: 1\nsource:\n  uri: db://p\n  table: t\n")
    _, _, diagnostics = front(path, {"source.api_key": 987654321987})
    assert {"LK202", "LK301"} <= {d.code for d in diagnostics}
    assert "987654321987" not in every_output(diagnostics)


def test_secret_in_lint_cli_output_in_every_format(write: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write("r.yaml", SECRET_RECIPES["with-other-errors"].format(s=SECRET))
    for fmt in FORMATS:
        result = subprocess.run([sys.executable, "-m", "loaderkit", "lint", "--format", fmt,
                                 str(path)], capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 1
        assert "LK301" in result.stdout
        assert SECRET not in result.stdout + result.stderr, fmt


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=st.text(string.ascii_letters + string.digits + "-_+/=", min_size=6, max_size=40),
       template=st.sampled_from(sorted(SECRET_RECIPES)))
def test_no_secret_value_reaches_any_output(secret: str, template: str,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    secret = "Zq" + secret  # never a YAML number, bool or null; never a word of a message
    path = tmp_path_factory.mktemp("secret") / "r.yaml"
    path.write_text(SECRET_RECIPES[template].format(s=secret), encoding="utf-8")
    diagnostics = lint([path])
    assert secret not in every_output(diagnostics)


# --- values read through ${env:NAME} ---------------------------------------------------------

ENV_SECRET = "s3cr3t-Env-v4lue"


@pytest.mark.parametrize(("key", "section"), [
    ("batch_size", "loader"), ("drop_last", "loader"), ("seed", "sampler"),
    ("rank", "sampler"), ("type", "sampler")])
def test_a_bad_value_read_from_the_environment_is_shown_as_its_reference(
        key: str, section: str, write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_SECRET", ENV_SECRET)
    path = write("r.yaml", f"{HEAD}{section}:\n  {key}: ${{env:LK_SECRET}}\n")
    diagnostics = front(path)[2]
    assert [d.code for d in diagnostics] == ["LK202"]
    assert "${env:LK_SECRET}" in diagnostics[0].message
    assert ENV_SECRET not in every_output(diagnostics)


def test_a_name_read_from_the_environment_gets_no_suggestion_near_it(
        write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_FMT", "torchh")  # one letter from `torch`: a hint would tell
    path = write("r.yaml", HEAD + "format: ${env:LK_FMT}\n")
    [diagnostic] = front(path)[2]
    assert diagnostic.hint is not None and diagnostic.hint.startswith("one of: ")
    assert "torchh" not in every_output([diagnostic])


@pytest.mark.parametrize(("body", "variables", "says"), [
    ("loaderkit: ${env:LK_V}\nsource:\n  uri: x\n", {"LK_V": "7"},
     "unknown recipe format version ${env:LK_V}"),
    (HEAD + "sampler:\n  rank: ${env:LK_R}\n  world_size: ${env:LK_W}\n",
     {"LK_R": "5", "LK_W": "2"}, "rank ${env:LK_R} is outside world_size ${env:LK_W}"),
    (HEAD + "columns: [image]\ndecode: {image: {type: image}}\nformat: ${env:LK_F}\n",
     {"LK_F": "arrow"}, "format '${env:LK_F}' has no named columns"),
], ids=["LK204-version", "LK208-rank", "LK213-format"])
def test_a_cross_field_rule_shows_a_value_read_from_the_environment_as_its_reference(
        body: str, variables: dict[str, str], says: str, write: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    diagnostics = front(write("r.yaml", body))[2]
    assert any(says in d.message for d in diagnostics), diagnostics


def test_a_default_written_in_the_recipe_is_shown(write: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LK_UNSET_BS", raising=False)
    path = write("r.yaml", HEAD + "loader:\n  batch_size: ${env:LK_UNSET_BS,lots}\n")
    [diagnostic] = lint([path])
    assert "got 'lots'" in diagnostic.message  # in the recipe in clear: not a secret


def test_a_number_too_long_to_read_from_the_environment_is_a_located_diagnostic(
        write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_BIG", "9" * 5001)  # past Python's int max str digits
    path = write("r.yaml", HEAD + "loader:\n  batch_size: ${env:LK_BIG}\n")
    diagnostics = front(path)[2]
    assert [(d.line, d.column, d.code) for d in diagnostics] == [(5, 15, "LK202")]
    assert "9999" not in every_output(diagnostics)


def test_a_number_too_long_in_an_override_is_a_located_diagnostic(write: Any) -> None:
    path = write("r.yaml", HEAD)
    diagnostics = front(path, ["loader.batch_size=" + "9" * 5001])[2]
    assert [d.code for d in diagnostics] == ["LK202"]


# --- the redactor ----------------------------------------------------------------------------

def test_the_redactor_replaces_each_value_read_by_its_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_A", "abcd-secret")
    monkeypatch.setenv("LK_B", "abcd")
    redact = Redactor(["LK_A", "LK_B"])
    assert redact("x abcd-secret y abcd z") == "x ${env:LK_A} y ${env:LK_B} z"  # longest first


def test_the_redactor_never_rewrites_a_reference_it_put_in(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_A", "abcd-secret")
    monkeypatch.setenv("LK_ENV", "{env:")
    assert Redactor(["LK_A", "LK_ENV"])("x abcd-secret") == "x ${env:LK_A}"


def test_the_redactor_finds_the_bucket_and_key_of_a_url_quoted_apart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_URI", "s3://private-bucket/deep/path.lance")
    redact = Redactor.of_data({"source": {"uri": "${env:LK_URI}"}})
    text = redact("GET http://host/private-bucket?prefix=deep%2Fpath.lance%2F_versions")
    assert "private-bucket" not in text and "deep" not in text


@pytest.mark.parametrize("value", ["./private-place.lance", "private-place.lance/",
                                   "sub/../private-place.lance", "file://{tmp}//private-place.lance"])
def test_the_redactor_finds_a_local_path_as_the_engine_spells_it(
        value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Lance quotes a relative path made absolute and normalised, and as an object-store key.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LK_URI", value.format(tmp=tmp_path))
    absolute = str(tmp_path / "private-place.lance")
    redact = Redactor(["LK_URI"])
    text = redact(f"Dataset at path {absolute.lstrip('/')} was not found: {absolute}/_versions")
    assert "private-place" not in text, text
    assert text.count("${env:LK_URI}") == 2


def test_the_redactor_takes_no_path_forms_of_a_url(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LK_URI", "s3://bucket-name/x.lance")
    assert not any(str(tmp_path).lstrip("/") in form for form in Redactor(["LK_URI"]).values)


@pytest.mark.parametrize("value", ["abc", "true", "False", "null"])
def test_the_redactor_leaves_short_values_and_plain_words_alone(
        value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_PLAIN", value)
    text = f"a message that says {value} and true"
    assert Redactor(["LK_PLAIN"])(text) == text


def test_the_redactor_knows_only_variables_that_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LK_UNSET_X", raising=False)
    redact = Redactor.of_data({"uri": "${env:LK_UNSET_X,default-value}"})
    assert redact("default-value") == "default-value"  # a default is written in clear


TYPED_KEYS = ["loader:\n  batch_size", "loader:\n  drop_last", "loader:\n  num_workers",
              "format", "sampler:\n  type", "sampler:\n  seed", "sampler:\n  rank",
              "loaderkit"]


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=st.text(string.printable.strip(), min_size=4, max_size=60),
       key=st.sampled_from(TYPED_KEYS))
def test_no_value_read_from_the_environment_reaches_any_output(
        secret: str, key: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    secret = "Zq" + secret  # never a YAML number, bool or null; never a word of a message
    path = tmp_path_factory.mktemp("env") / "r.yaml"
    head = HEAD if key != "loaderkit" else "source:\n  uri: data/train.lance\n"
    path.write_text(f"{head}{key}: ${{env:LK_FUZZ_SECRET}}\n", encoding="utf-8")
    os.environ["LK_FUZZ_SECRET"] = secret
    try:
        diagnostics = front(path)[2]
    finally:
        del os.environ["LK_FUZZ_SECRET"]
    assert diagnostics  # "Zq..." is no number, boolean or name: always an error
    assert secret not in every_output(diagnostics)
