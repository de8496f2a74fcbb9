"""A secret written in a recipe or an override is reported, and never repeated in any output."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaderkit.compiler import front, lint
from loaderkit.errors import RecipeError
from loaderkit.report import FORMATS, render

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
