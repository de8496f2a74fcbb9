"""The Python face (docs/python.md): diagnostics' attributes and one error hierarchy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import loaderkit
from loaderkit import LoaderkitError, RecipeError, load_recipe

from .support import HEAD

JSON_KEYS = ("file", "line", "column", "code", "severity", "message", "hint")


def test_recipe_error_diagnostics_have_the_json_key_names_as_attributes(write: Any) -> None:
    path = write("r.yaml", HEAD + "loader:\n  batch_sise: 4\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path))
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.file, diagnostic.line, diagnostic.column) == (str(path), 5, 3)
    assert (diagnostic.code, diagnostic.severity) == ("LK201", "error")
    assert "batch_sise" in diagnostic.message
    assert diagnostic.hint == "rename it to 'batch_size'"


def test_diagnostic_attributes_equal_lint_json_output(write: Any) -> None:
    path = write("r.yaml", HEAD + "loader:\n  batch_sise: 4\n")
    result = subprocess.run([sys.executable, "-m", "loaderkit", "lint", "--format", "json",
                             str(path)], capture_output=True, text=True, timeout=60, check=False)
    (printed,) = json.loads(result.stdout)
    (diagnostic,) = loaderkit.compiler.lint([path])
    assert {k: getattr(diagnostic, k) for k in printed} == printed
    assert set(printed) <= set(JSON_KEYS)


@pytest.mark.parametrize("name", ["RecipeError", "SourceError", "FormatError", "ResumeError",
                                  "DecodeError", "SamplerError",
                                  "CacheBudgetError", "MissingEnvError", "TransformError",
                                  "FactoryError", "UserCodeError", "RuntimeFailure"])
def test_every_error_class_is_importable_from_loaderkit_and_derives_from_the_root(
        name: str) -> None:
    assert issubclass(getattr(loaderkit, name), LoaderkitError)


def test_importing_the_errors_loads_neither_torch_nor_lance() -> None:
    code = ("import sys; from loaderkit import SourceError, ResumeError, FormatError; "
            "print([m for m in ('torch', 'lance', 'lancedb') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_a_multi_line_hint_prints_each_line_indented_and_escaped() -> None:
    from loaderkit.errors import Diagnostic, Location, Severity

    hint = "first\n  File \"m.py\", line 3\n::error::fake\x1b[31m"
    text = str(Diagnostic(Location("r.yaml", 2, 1), "LK000", Severity.ERROR, "m", hint))
    lines = text.split("\n")
    assert lines[1] == "  hint: first"
    assert all(line.startswith("    ") for line in lines[2:])
    assert "\x1b" not in text and Path("r.yaml").name in lines[0]
