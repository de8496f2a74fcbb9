"""Every numeric key is bounded offline: `lint` refuses a value out of its bounds with LK202
at the value (also one read through `${env:}`), and the schema and docs/reference.md say the
bounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loaderkit.compiler import lint
from loaderkit.models import json_schema

from .support import HEAD

ROOT = Path(__file__).resolve().parents[2]

# (the YAML after HEAD, the text of the offending value, where the schema has the key)
OUT_OF_BOUNDS = [
    ("sampler:\n  seed: 18446744073709551616\n", "18446744073709551616", "Sampler.seed"),
    ("sampler:\n  seed: -1\n", "-1", "Sampler.seed"),
    ("sampler:\n  rank: -1\n  world_size: 2\n", "-1", "Sampler.rank"),
    ("sampler:\n  rank: 0\n  world_size: 0\n", "0", "Sampler.world_size"),
    ("sampler:\n  world_size: 2000000\n", "2000000", "Sampler.world_size"),
    ("sampler:\n  block_rows: 4294967296\n", "4294967296", "Sampler.block_rows"),
    ("sampler:\n  chunk_rows: 4294967296\n", "4294967296", "Sampler.chunk_rows"),
    ("sampler:\n  cache_mb: 99999999999999\n", "99999999999999", "Sampler.cache_mb"),
    ("loader:\n  batch_size: 100000000000000000000000000000\n",
     "100000000000000000000000000000", "Loader.batch_size"),
    ("loader:\n  num_workers: 100000\n", "100000", "Loader.num_workers"),
    ("loader:\n  num_workers: 2\n  prefetch_factor: 5000\n", "5000", "Loader.prefetch_factor"),
    ("loader:\n  timeout: .inf\n", ".inf", "Loader.timeout"),
    ("loader:\n  timeout: .nan\n", ".nan", "Loader.timeout"),
    ("loader:\n  batch_readahead: 5000\n", "5000", "Loader.batch_readahead"),
    ("loader:\n  reads_in_flight: 5000\n", "5000", "Loader.reads_in_flight"),
    ("limit: 9223372036854775808\n", "9223372036854775808", "Recipe.limit"),
    ("splits:\n  by: id\n  seed: -3\n  fractions: {a: 1}\n", "-3", "Splits.seed"),
    ("decode:\n  image: {size: [224, 100000]}\ncolumns: [image]\n", "100000", "Decode.size"),
]


def lint_one(write: Any, body: str) -> list[Any]:
    return lint([write("recipe.yaml", HEAD + body)])


@pytest.mark.parametrize(("body", "value", "key"), OUT_OF_BOUNDS,
                         ids=[k + "=" + v for _, v, k in OUT_OF_BOUNDS])
def test_a_value_out_of_bounds_is_lk202_at_the_value(write: Any, body: str, value: str,
                                                      key: str) -> None:
    text = HEAD + body
    [problem] = lint_one(write, body)
    line = text[:text.rindex(" " + value) + 1].count("\n") + 1
    column = len(text[:text.rindex(" " + value) + 1].rsplit("\n", 1)[-1]) + 1
    assert (problem.code, problem.line, problem.column) == ("LK202", line, column)


@pytest.mark.parametrize("weight", [".inf", "-.inf", ".nan", "0", "1.0e+16"])
def test_a_mixture_weight_is_finite_above_zero(write: Any, weight: str) -> None:
    body = ("sources:\n  a: {uri: a.lance, weight: " + weight + "}\n"
            "  b: {uri: b.lance, weight: 1}\n")
    text = "loaderkit: 1\n" + body
    [problem] = lint([write("recipe.yaml", text)])
    assert (problem.code, problem.line) == ("LK202", 3)


def mixture_of(a: str, b: str | None) -> str:
    b_weight = "" if b is None else ", weight: " + b
    return ("loaderkit: 1\nsources:\n  a: {uri: a.lance, weight: " + a + "}\n"
            "  b: {uri: b.lance" + b_weight + "}\n")


@pytest.mark.parametrize(("a", "b"), [("1.0e-5", "1.0e+15"), ("1.0e+15", "1.0e-5"),
                                      ("1.0e-20", "1"), ("1.0e-12", "1"), ("1.0e-7", None)])
def test_weights_over_a_million_apart_are_lk221_at_the_smaller_weight(
        write: Any, a: str, b: str | None) -> None:
    # Each weight is in (0, 1e15]; together they would empty or stretch the epoch.
    text = mixture_of(a, b)
    [problem] = lint([write("recipe.yaml", text)])
    smaller = min([a, b or "1"], key=float)
    line = 3 if smaller == a else 4
    column = text.splitlines()[line - 1].index("weight: " + smaller) + len("weight: ") + 1
    assert (problem.code, problem.line, problem.column) == ("LK221", line, column)


def test_weights_a_million_apart_lint_clean(write: Any) -> None:
    assert lint([write("recipe.yaml", mixture_of("1.0e-6", "1"))]) == []
    assert lint([write("recipe.yaml", mixture_of("1.0e+9", "1.0e+15"))]) == []


def test_a_weight_ratio_read_from_the_environment_shows_the_reference(
        write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_TINY_WEIGHT", "0.000000123")
    [problem] = lint([write("recipe.yaml", mixture_of('"${env:LK_TINY_WEIGHT}"', "1"))])
    assert (problem.code, problem.line) == ("LK221", 3)
    assert "${env:LK_TINY_WEIGHT}" in problem.message
    assert "123" not in f"{problem.message} {problem.hint}"


def test_a_value_out_of_bounds_read_from_the_environment_is_lk202(
        write: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_WORKERS", "100000")
    [problem] = lint_one(write, "loader:\n  num_workers: ${env:LK_WORKERS}\n")
    assert (problem.code, problem.line, problem.column) == ("LK202", 5, 16)


def test_values_at_the_bounds_lint_clean(write: Any) -> None:
    body = ("limit: 9223372036854775807\n"
            "sampler:\n  seed: 18446744073709551615\n  rank: 1048575\n  world_size: 1048576\n"
            "loader:\n  batch_size: 2147483647\n  num_workers: 1024\n  timeout: 604800\n")
    assert lint_one(write, body) == []


def test_rank_beyond_the_world_stays_lk208(write: Any) -> None:
    assert [d.code for d in lint_one(write, "sampler:\n  rank: 2\n  world_size: 2\n")] == \
        ["LK208"]


def test_lint_exits_1_on_a_value_out_of_bounds(write: Any) -> None:
    path = write("recipe.yaml", HEAD + "loader:\n  batch_size: 100000000000000000000000000000\n")
    result = subprocess.run([sys.executable, "-m", "loaderkit", "lint", str(path),
                             "--format", "json"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    [problem] = json.loads(result.stdout)
    assert (problem["code"], problem["line"], problem["column"]) == ("LK202", 5, 15)
    assert "2147483647" in problem["message"]


def _numeric(prop: dict[str, Any]) -> list[dict[str, Any]]:
    """The integer and number options of a schema property (its items, for a list)."""
    options = [prop, *prop.get("anyOf", [])]
    options += [o["items"] for o in options if o.get("type") == "array"]
    options += [o["additionalProperties"] for o in options
                if isinstance(o.get("additionalProperties"), dict)]
    return [o for o in options if o.get("type") in ("integer", "number")]


# Keys whose numbers are bounded elsewhere: the format version (LK204: exactly 1), and
# storage options (the object store's own settings, passed through as written).
UNBOUNDED = {"Recipe.loaderkit", "Source.storage_options", "MixtureSource.storage_options"}


def test_every_numeric_key_has_both_bounds_in_the_schema() -> None:
    schema = json_schema()
    models = {"Recipe": schema, **schema["$defs"]}
    missing = []
    for model, body in models.items():
        for name, prop in body.get("properties", {}).items():
            for option in _numeric(prop):
                low = "minimum" in option or "exclusiveMinimum" in option
                high = "maximum" in option or "exclusiveMaximum" in option
                if not (low and high) and f"{model}.{name}" not in UNBOUNDED:
                    missing.append(f"{model}.{name}")
    assert missing == []


def test_the_reference_shows_the_bounds() -> None:
    text = (ROOT / "docs" / "reference.md").read_text()
    assert "| `loader.batch_size` | integer in [1, 2147483647]" in text
    assert "| `sources.<name>.weight` | number in (0, 1e15]" in text
    assert "at most 1e6 times smaller than the mixture's largest weight" in text
    assert "| `sampler.seed` | integer in [0, 18446744073709551615]" in text


def test_an_integer_of_thousands_of_digits_is_one_problem_saying_it_is_too_large(
        write: Any) -> None:
    [problem] = lint_one(write, "loader:\n  batch_size: " + "9" * 5001 + "\n")
    assert (problem.code, problem.line, problem.column) == ("LK001", 5, 15)
    assert "5001 digits" in problem.message and "9" * 20 not in problem.message
