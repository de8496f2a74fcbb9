"""A value read through `${env:NAME}` is never printed (DESIGN.md §1), whatever prints it:
`loaderkit lint` in every format, `loaderkit build` (text and JSON), `load_recipe`'s
RecipeError and its traceback, and the engine's text passed on at build and at run time,
from the main process or from a worker.

Each command runs as a user runs it: the real CLI in a subprocess, with the secrets in its
environment only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import textwrap
import traceback
from pathlib import Path
from typing import Any

import pytest

from loaderkit import RecipeError, load_recipe
from loaderkit.compiler import compile_recipe
from tests.reliability.support import (
    HERE,
    PYTHON,
    free_port,
    subprocess_env,
    write_local_dataset,
    write_recipe,
)

FORMATS = ["text", "json", "github", "sarif"]

# A variable under each kind of key, each value wrong for its key where lint reads it (the
# keys that take a number, a boolean or a name) so that a diagnostic is about it.
TYPED = {
    "LK_T_BATCH": ("loader", "batch_size", "s3cr3t-batch-7f3a"),        # int
    "LK_T_DROP": ("loader", "drop_last", "s3cr3t-drop-7f3a"),           # bool
    "LK_T_WORKERS": ("loader", "num_workers", "-4242"),                 # int, out of range
    "LK_T_FORMAT": ("top", "format", "torchh-s3cr3t"),                  # a name (enum)
    "LK_T_SAMPLER": ("sampler", "type", "shufflee"),                    # a name, near one
    "LK_T_SEED": ("sampler", "seed", "s3cr3t-seed-7f3a"),               # int
    "LK_T_RANK": ("sampler", "rank", "s3cr3t-rank-7f3a"),               # int | auto
}
# Keys that take text: read where they are used, never during lint.
TEXT = {
    "LK_T_URI": "s3://s3cr3t-bucket-7f3a/train.lance",
    "LK_T_ENDPOINT": "http://s3cr3t-host-7f3a:9000",
    "LK_T_KEY": "s3cr3t-key-7f3a",
    "LK_T_COLUMN": "s3cr3t_column_7f3a",
    "LK_T_FILTER": "s3cr3t_filter_7f3a > 1",
}
SECRETS = {name: value for name, (_, _, value) in TYPED.items()} | TEXT


def _every_kind_recipe() -> str:
    sections: dict[str, list[str]] = {"loader": [], "sampler": [], "top": []}
    for name, (section, key, _) in TYPED.items():
        sections[section].append(f"{key}: ${{env:{name}}}")
    return (
        "loaderkit: 1\n"
        "source:\n"
        "  uri: ${env:LK_T_URI}\n"
        "  storage_options:\n"
        "    aws_endpoint: ${env:LK_T_ENDPOINT}\n"
        "    aws_secret_access_key: ${env:LK_T_KEY}\n"
        "columns:\n  - id\n  - ${env:LK_T_COLUMN}\n"       # a list element
        "filter: ${env:LK_T_FILTER}\n"
        + "".join(f"{line}\n" for line in sections["top"])
        + "sampler:\n" + "".join(f"  {line}\n" for line in sections["sampler"])
        + "loader:\n" + "".join(f"  {line}\n" for line in sections["loader"]))


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "loaderkit", *args], capture_output=True, text=True,
                          env=subprocess_env(**env), cwd=cwd, timeout=300, check=False)


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


@pytest.fixture
def every_kind(tmp_path: Path) -> Path:
    return write_recipe(tmp_path / "every_kind.yaml", _every_kind_recipe())


@pytest.mark.parametrize("fmt", FORMATS)
def test_lint_prints_no_value_read_from_the_environment(every_kind: Path, fmt: str) -> None:
    result = _cli("lint", "--format", fmt, str(every_kind), cwd=every_kind.parent, **SECRETS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert _leaks(result.stdout + result.stderr, SECRETS) == [], result.stdout
    for name in TYPED:  # each is reported, at its reference
        assert f"${{env:{name}}}" in result.stdout, (name, result.stdout)


def test_lint_reports_each_bad_value_read_from_the_environment_at_its_reference(
        every_kind: Path) -> None:
    result = _cli("lint", "--format", "json", str(every_kind), cwd=every_kind.parent, **SECRETS)
    found = json.loads(result.stdout)
    lines = every_kind.read_text().splitlines()
    for name in TYPED:
        line = next(i for i, text in enumerate(lines, 1) if f"${{env:{name}}}" in text)
        [item] = [d for d in found if d["line"] == line]
        assert item["code"] == "LK202" and f"${{env:{name}}}" in item["message"], item
        assert "did you mean" not in item.get("hint", ""), item  # no value near the secret


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_build_prints_no_value_read_from_the_environment(every_kind: Path,
                                                         as_json: bool) -> None:
    result = _cli("build", str(every_kind), *(["--json"] if as_json else []),
                  cwd=every_kind.parent, **SECRETS)
    assert result.returncode == 1 and "LK202" in result.stdout, result.stdout + result.stderr
    assert _leaks(result.stdout + result.stderr, SECRETS) == [], result.stdout


def test_load_recipe_raises_a_recipe_error_that_holds_no_value(
        every_kind: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(every_kind))
    printed = "".join(traceback.format_exception(caught.value))
    assert _leaks(printed + repr(caught.value.diagnostics), SECRETS) == [], printed


def test_a_number_of_5001_digits_from_the_environment_is_a_located_diagnostic(
        tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", """
        loaderkit: 1
        source:
          uri: data/train.lance
        sampler:
          seed: ${env:LK_T_HUGE}
        """)
    for command in (["lint"], ["build"]):
        result = _cli(*command, str(recipe), cwd=tmp_path, LK_T_HUGE="7" * 5001)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert f"{recipe}:5:9: error LK202" in result.stdout, result.stdout
        assert "7777" not in result.stdout + result.stderr


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_build_that_succeeds_shows_settings_read_from_the_environment_as_references(
        tmp_path: Path, as_json: bool) -> None:
    dataset = write_local_dataset(tmp_path / "data.lance", rows=200)
    recipe = write_recipe(tmp_path / "r.yaml", f"""
        loaderkit: 1
        source:
          uri: {dataset}
        format: ${{env:LK_T_FORMAT}}
        sampler:
          type: shuffle
          seed: ${{env:LK_T_SEED}}
        loader:
          batch_size: ${{env:LK_T_BATCH}}
        """)
    secrets = {"LK_T_SEED": "987654321987", "LK_T_BATCH": "7919", "LK_T_FORMAT": "python_col"}
    result = _cli("build", str(recipe), "--no-probe", *(["--json"] if as_json else []),
                  cwd=tmp_path, **secrets)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "${env:LK_T_SEED}" in result.stdout and "${env:LK_T_BATCH}" in result.stdout
    assert _leaks(result.stdout + result.stderr, secrets) == [], result.stdout


# --- engine text at build: a uri and an endpoint read from the environment -------------------

def test_build_does_not_pass_on_a_uri_or_endpoint_in_the_engines_text(tmp_path: Path) -> None:
    # Nothing listens on the endpoint: the engine's error names the request it tried.
    secrets = {"LK_T_URI": "s3://s3cr3t-bucket-7f3a/deep/train.lance",
               "LK_T_ENDPOINT": f"http://127.0.0.1:{free_port()}",
               "LK_T_KEY": "s3cr3t-key-7f3a", "LK_T_KEY_ID": "AKIDs3cr3t7f3a"}
    recipe = write_recipe(tmp_path / "s3.yaml", """
        loaderkit: 1
        source:
          uri: ${env:LK_T_URI}
          storage_options:
            aws_endpoint: ${env:LK_T_ENDPOINT}
            aws_access_key_id: ${env:LK_T_KEY_ID}
            aws_secret_access_key: ${env:LK_T_KEY}
            aws_region: us-east-1
            allow_http: "true"
            client_max_retries: "0"
        """)
    parts = {"bucket": "s3cr3t-bucket-7f3a", "key": "deep/train.lance", "key, encoded":
             "deep%2Ftrain.lance", "port": secrets["LK_T_ENDPOINT"].rsplit(":", 1)[1]}
    for extra in ([], ["--json"]):
        result = _cli("build", str(recipe), *extra, cwd=tmp_path, **secrets)
        out = result.stdout + result.stderr
        assert result.returncode == 1 and "LK401" in result.stdout, out
        assert "${env:LK_T_URI}" in result.stdout
        assert _leaks(out, secrets | parts) == [], out


def test_build_does_not_pass_on_a_relative_path_the_engine_made_absolute(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", "loaderkit: 1\nsource:\n  uri: ${env:LK_T_URI}\n")
    for value in ("./s3cr3t-gone-7f3a.lance", f"{tmp_path}//s3cr3t-gone-7f3a.lance/"):
        result = _cli("build", str(recipe), cwd=tmp_path, LK_T_URI=value)
        out = result.stdout + result.stderr
        assert result.returncode == 1 and "LK401" in result.stdout, out
        assert "s3cr3t-gone-7f3a" not in out, out


# --- engine text at run time: from this process and from a worker ----------------------------

# Reads one batch, deletes the data, reads on; prints what a user would see of the error.
_READER = textwrap.dedent("""
    import json, shutil, sys, traceback, warnings
    from loaderkit.compiler import compile_recipe
    warnings.simplefilter("ignore")
    loader = compile_recipe(sys.argv[1], probe=False).loader
    batches = iter(loader)
    next(batches)
    shutil.rmtree(sys.argv[2])
    try:
        for _ in batches:
            pass
    except Exception as exc:
        print(json.dumps({"type": type(exc).__name__,
                          "printed": "".join(traceback.format_exception(exc)),
                          "worker_traceback": getattr(exc, "worker_traceback", None) or ""}))
""")


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
@pytest.mark.parametrize("workers", [0, 2], ids=["main-process", "worker"])
def test_a_read_failure_passes_on_no_value_read_from_the_environment(
        tmp_path: Path, workers: int, relative: bool) -> None:
    dataset = write_local_dataset(tmp_path / "s3cr3t-place-7f3a.lance", rows_per_file=100)
    # The engine quotes a relative path made absolute: the redactor knows that form too.
    uri = "./" + os.path.relpath(dataset, HERE.parent.parent) + "/" if relative else str(dataset)
    # With a transform the workers read every chunk (the main process reads none).
    transform = "transform: tests.reliability.batch_marker:mark\n" if workers else ""
    recipe = write_recipe(tmp_path / "r.yaml", f"""
        loaderkit: 1
        source:
          uri: ${{env:LK_T_URI}}
        columns: [id]
        sampler:
          type: full_scan
          chunk_rows: 100
        loader:
          batch_size: 10
          num_workers: {workers}
        """ + transform)
    child = subprocess.run([PYTHON, "-c", _READER, str(recipe), str(dataset)],
                           capture_output=True, text=True, timeout=300, cwd=HERE.parent.parent,
                           env=subprocess_env(LK_T_URI=uri), check=False)
    assert child.returncode == 0, child.stderr[-3000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["type"] == "SourceError", outcome
    assert "${env:LK_T_URI}" in outcome["printed"]
    for text in (outcome["printed"], outcome["worker_traceback"], child.stderr):
        assert "s3cr3t-place-7f3a" not in text, text


def test_the_pre_stop_hooks_command_prints_no_secret(tmp_path: Path) -> None:
    # The pre-stop hook's own command line, through a shell, as CI runs it.
    script = ("printf 'loaderkit: 1\\nsource:\\n  uri: %s/none.lance\\nloader:\\n  batch_size: "
              "${env:LK_HOOK_SECRET}\\n' \"$tmp\" > r.yaml; "
              f"LK_HOOK_SECRET=hook-s3cr3t-v4lue {shlex.quote(PYTHON)} -m loaderkit lint r.yaml "
              "--format json")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env=subprocess_env(tmp=str(tmp_path)), timeout=120, check=False)
    assert json.loads(result.stdout)[0]["code"] == "LK202", result.stdout + result.stderr
    assert "hook-s3cr3t-v4lue" not in result.stdout + result.stderr


# --- user code handed a value read from the environment --------------------------------------

FACTORY_URI = "s3cr3t-db-7f3a"
FACTORY_RECIPE = """
    loaderkit: 1
    source:
      uri: ${env:LK_T_DB}
      connection_factory: tests.reliability.secret_factory:refuse
    """


def test_build_does_not_pass_on_a_value_quoted_by_a_failing_factory(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", FACTORY_RECIPE)
    result = _cli("build", str(recipe), cwd=HERE.parent.parent, LK_T_DB=FACTORY_URI)
    assert result.returncode == 1 and "LK411" in result.stdout, result.stdout + result.stderr
    assert "no table at ${env:LK_T_DB}" in result.stdout
    assert FACTORY_URI not in result.stdout + result.stderr


def test_a_failing_factory_opened_by_the_runtime_quotes_no_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # What a worker does when it opens its source: the error, and its traceback, are clean.
    from loaderkit.errors import FactoryError
    from loaderkit.runtime import open_source
    from loaderkit.runtime.spec import SourceSpec
    from loaderkit.vocabulary import EnvValue

    monkeypatch.setenv("LK_T_DB", FACTORY_URI)
    spec = SourceSpec(uri=EnvValue("LK_T_DB"),
                      connection_factory="tests.reliability.secret_factory:refuse")
    with pytest.raises(FactoryError) as caught:
        open_source(spec)
    printed = "".join(traceback.format_exception(caught.value))
    assert "no table at ${env:LK_T_DB}" in str(caught.value)
    assert FACTORY_URI not in printed, printed


# Iterates the loader; prints what a user would see of the error.
_ITERATOR = textwrap.dedent("""
    import json, sys, traceback, warnings
    from loaderkit import load_recipe
    warnings.simplefilter("ignore")
    try:
        for _ in load_recipe(sys.argv[1]):
            pass
    except Exception as exc:
        print(json.dumps({"type": type(exc).__name__,
                          "printed": "".join(traceback.format_exception(exc))}))
""")


def _region_recipe(tmp_path: Path, transform: str, workers: int) -> Path:
    """A recipe whose aws_region is ${env:LK_T_REGION} and whose transform (of
    secret_factory.py) quotes that region in what it raises or warns."""
    dataset = write_local_dataset(tmp_path / "data.lance", rows=200)
    return write_recipe(tmp_path / "r.yaml", f"""
        loaderkit: 1
        source:
          uri: {dataset}
          storage_options: {{aws_region: "${{env:LK_T_REGION}}"}}
        columns: [id]
        transform: tests.reliability.secret_factory:{transform}
        loader:
          batch_size: 50
          num_workers: {workers}
        """)


@pytest.mark.parametrize("workers", [0, 2], ids=["main-process", "worker"])
def test_a_failing_transform_quotes_no_value_read_from_the_environment(
        tmp_path: Path, workers: int) -> None:
    recipe = _region_recipe(tmp_path, "refuse_region", workers)
    child = subprocess.run([PYTHON, "-c", _ITERATOR, str(recipe)], capture_output=True,
                           text=True, timeout=300, cwd=HERE.parent.parent,
                           env=subprocess_env(LK_T_REGION="s3cr3t-region-7f3a"), check=False)
    assert child.returncode == 0, child.stderr[-3000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["type"] == "TransformError", outcome
    assert "bad region ${env:LK_T_REGION}" in outcome["printed"]
    assert "s3cr3t-region-7f3a" not in outcome["printed"] + child.stderr, outcome["printed"]


@pytest.mark.parametrize("workers", [0, 2], ids=["main-process", "worker"])
def test_a_transforms_warning_quotes_no_value_read_from_the_environment(
        tmp_path: Path, workers: int) -> None:
    recipe = _region_recipe(tmp_path, "warn_region", workers)
    script = f"from loaderkit import load_recipe\nfor _ in load_recipe({str(recipe)!r}): pass\n"
    child = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=300,
                           cwd=HERE.parent.parent,
                           env=subprocess_env(LK_T_REGION="s3cr3t-region-7f3a"), check=False)
    assert child.returncode == 0, child.stderr[-3000:]
    assert "slow region ${env:LK_T_REGION}" in child.stderr, child.stderr
    # Shown once per process, as the default filter shows it, not once per batch.
    assert child.stderr.count("UserWarning: slow region") <= max(1, workers), child.stderr
    assert "s3cr3t-region-7f3a" not in child.stdout + child.stderr, child.stderr


# --- numbers read from the environment, in the messages about them ---------------------------

def _messages(diagnostics: list[Any]) -> str:
    return "\n".join(f"{d.message}\n{d.hint or ''}" for d in diagnostics)


def _numbers_in(text: str, values: dict[str, str]) -> list[str]:
    """The variables whose value stands in `text` as a number of its own."""
    return [name for name, value in values.items() if re.search(rf"\b{value}\b", text)]


def test_steps_diagnostics_show_numbers_read_from_the_environment_as_references(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A value under REDACT_MIN characters cannot be replaced in text: the message itself
    # names the setting by its reference.
    dataset = write_local_dataset(tmp_path / "data.lance", rows=600)
    recipe = write_recipe(tmp_path / "r.yaml", f"""
        loaderkit: 1
        source:
          uri: {dataset}
        sampler:
          world_size: ${{env:LK_T_WS}}
        loader:
          batch_size: ${{env:LK_T_BATCH}}
          drop_last: true
        limit: ${{env:LK_T_LIMIT}}
        """)
    values = {"LK_T_WS": "7", "LK_T_BATCH": "100", "LK_T_LIMIT": "477"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RecipeError) as caught:
        compile_recipe(recipe, probe=False)
    diagnostics = [d for d in caught.value.diagnostics if d.code == "LK414"]
    assert diagnostics, caught.value
    text = _messages(diagnostics)
    assert "over ${env:LK_T_WS} ranks" in text and "${env:LK_T_BATCH} x ${env:LK_T_WS}" in text
    assert "the epoch has ${env:LK_T_LIMIT}" in text
    assert _numbers_in(text, values) == [], text


def test_a_workers_warning_shows_a_count_read_from_the_environment_as_its_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = write_local_dataset(tmp_path / "data.lance", rows=200)
    recipe = write_recipe(tmp_path / "r.yaml", f"""
        loaderkit: 1
        source:
          uri: {dataset}
        loader:
          num_workers: ${{env:LK_T_WORKERS}}
        """)
    monkeypatch.setenv("LK_T_WORKERS", "2")
    diagnostics = compile_recipe(recipe, probe=False).diagnostics
    text = _messages([d for d in diagnostics if d.code == "LK408"])
    assert text.startswith("${env:LK_T_WORKERS} workers with no transform"), diagnostics
    assert _numbers_in(text, {"LK_T_WORKERS": "2"}) == [], text

