"""A `${env:...}` secret in `source.storage_options` is never printed, logged or pickled,
while spawn workers still read the data (they read the secret from their own environment).

Lance accepts `aws_secret_access_key` on a local dataset and ignores it, so the recipe is
real and readable; the name matches the secret pattern (key|secret|token|password).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit import RecipeError, cli
from loaderkit.building import build
from loaderkit.checking import check
from loaderkit.compiler import compile_recipe
from loaderkit.showing import show_build

from .conftest import SAFE_RECIPE, SafeBuild
from .support import Captured, capture_fds, line_col

Write = Callable[[str], Path]


@pytest.fixture(scope="module")
def cli_runs(safe_build: SafeBuild) -> dict[str, tuple[int, Captured]]:
    """`loaderkit build` on the safe recipe, as text and as --json (the probe already ran,
    with its output captured, in `safe_build`)."""
    runs = {}
    for name, flags in (("text", []), ("json", ["--json"])):
        with capture_fds() as output:
            code = cli.main(["build", str(safe_build.path), "--no-probe", *flags])
        runs[name] = (code, output)
    return runs


def test_secret_reaches_nothing_printed_while_building_and_reading(
        safe_build: SafeBuild, secret: str) -> None:
    assert safe_build.ids  # the workers did read, with the secret option in force
    assert secret not in safe_build.output.both


def test_secret_reaches_no_log_record(safe_build: SafeBuild, secret: str) -> None:
    assert not any(secret in line for line in safe_build.logs)


def test_secret_is_not_in_the_build_report(safe_build: SafeBuild, secret: str) -> None:
    text = show_build(safe_build.compiled, None, as_json=False)
    assert "check: spawn probe: ok" in text and "${env:LK_TEST_SECRET}" in text
    assert secret not in text


def test_secret_is_not_in_build_text_output(cli_runs: dict[str, tuple[int, Captured]],
                                            secret: str) -> None:
    code, output = cli_runs["text"]
    assert code == 0 and "'aws_secret_access_key': '${env:LK_TEST_SECRET}'" in output.out
    assert secret not in output.both


def test_secret_is_not_in_build_json_output(cli_runs: dict[str, tuple[int, Captured]],
                                            secret: str) -> None:
    code, output = cli_runs["json"]
    assert code == 0 and json.loads(output.out)["graph"]
    assert secret not in output.both


def test_secret_is_not_in_the_pickled_dataset(safe_build: SafeBuild, secret: str) -> None:
    assert secret.encode() not in pickle.dumps(safe_build.compiled.loader.dataset)


def test_secret_is_not_in_the_pickled_collate_fn(safe_build: SafeBuild, secret: str) -> None:
    assert secret.encode() not in pickle.dumps(safe_build.compiled.loader.collate_fn)


def test_secret_is_not_in_the_pickled_sampler_tasks(safe_build: SafeBuild, secret: str) -> None:
    tasks = list(safe_build.compiled.loader.row_sampler.tasks(0))
    assert tasks and secret.encode() not in pickle.dumps(tasks)


def test_the_payload_scan_covered_the_secret(safe_build: SafeBuild) -> None:
    assert ("secrets absent from the payload", "ok (1 secret(s) scanned)") in \
        safe_build.compiled.safety.checks  # type: ignore[union-attr]


def test_a_payload_holding_the_secret_is_refused(safe_build: SafeBuild, secret: str) -> None:
    # The same plan, a freshly built loader whose dataset carries the secret's value, the way
    # a factory module that captured os.environ at import into the dataset would.
    plan = safe_build.compiled.plan
    loader, problems = build(plan)
    assert loader is not None and not problems
    loader.dataset.credentials = {"key": os.environ["LK_TEST_SECRET"]}  # type: ignore[attr-defined]
    report = check(plan, loader, probe=False)
    found = [(d.location.file, d.location.line, d.location.column, d.code)
             for d in report.diagnostics]
    where = line_col(safe_build.path, "aws_secret_access_key:")
    assert found == [(str(safe_build.path), *where, "LK504")]
    assert ("secrets absent from the payload", "failed") in report.checks
    assert secret not in str(report.diagnostics[0])


def test_a_missing_dataset_error_does_not_repeat_the_secret(write_recipe: Write,
                                                            secret: str) -> None:
    path = write_recipe(SAFE_RECIPE.replace("items.lance", "missing.lance"))
    with pytest.raises(RecipeError) as caught:
        compile_recipe(path)
    assert [d.code for d in caught.value.errors] == ["LK401"]
    assert secret not in str(caught.value)
