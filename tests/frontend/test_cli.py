"""`loaderkit lint` and `loaderkit schema` as a user runs them: a real subprocess."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import HEAD

REPO = Path(__file__).resolve().parents[2]

BAD = HEAD + "loader:\n  batch_sise: 4\n"


def loaderkit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loaderkit", *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=cwd)


def test_lint_clean_recipe_exits_0(write: Any) -> None:
    result = loaderkit("lint", str(write("ok.yaml", HEAD)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_lint_recipe_with_errors_exits_1_and_prints_located_diagnostics(write: Any) -> None:
    path = write("bad.yaml", BAD)
    result = loaderkit("lint", str(path))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{path}:5:3: error LK201 unknown key 'batch_sise'")
    assert "1 error(s), 0 warning(s)" in result.stderr


def test_lint_warnings_alone_exit_0(write: Any) -> None:
    path = write("w.yaml", HEAD + "loader:\n  num_workers: 2\n  multiprocessing_context: fork\n"
                                  "  allow_fork: true\n")
    result = loaderkit("lint", str(path))
    assert result.returncode == 0
    assert "warning LK506" in result.stdout


@pytest.mark.parametrize("args", [["lint", "--bogus", "x.yaml"], ["lint"], [],
                                  ["lint", "--format", "xml", "x.yaml"], ["frobnicate"]],
                         ids=["unknown-flag", "no-path", "no-command", "bad-format",
                              "unknown-command"])
def test_usage_error_exits_2(args: list[str]) -> None:
    result = loaderkit(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_lint_directory_recurses_over_yaml_and_yml(tmp_path: Path, write: Any) -> None:
    write("top.yaml", HEAD)
    write("deep/er/bad.yml", BAD)
    write("deep/bad.yaml", "loaderkit: 2\nsource:\n  uri: x\n")
    write("deep/notes.txt", "loaderkit: [")  # not a recipe: ignored
    result = loaderkit("lint", "--format", "json", str(tmp_path))
    assert result.returncode == 1
    files = sorted(Path(d["file"]).relative_to(tmp_path).as_posix()
                   for d in json.loads(result.stdout))
    assert files == ["deep/bad.yaml", "deep/er/bad.yml"]


WORKFLOW = "name: CI\non: [push]\njobs:\n  lint:\n    runs-on: ubuntu-latest\n" \
           "    steps:\n      - run: loaderkit lint recipes/\n"
PRE_COMMIT = "repos:\n  - repo: local\n    hooks:\n      - {id: loaderkit, entry: loaderkit lint}\n"


def project(write: Any, recipe: str = HEAD) -> None:
    """A repository as lint meets it: a recipe beside other YAML that is no recipe."""
    write("recipes/train.yaml", recipe)
    write(".github/workflows/ci.yml", WORKFLOW)
    write(".pre-commit-config.yaml", PRE_COMMIT)


def test_lint_directory_skips_yaml_without_a_loaderkit_key(tmp_path: Path, write: Any) -> None:
    project(write)
    result = loaderkit("lint", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_lint_directory_says_how_many_files_it_skipped(tmp_path: Path, write: Any) -> None:
    project(write)
    result = loaderkit("lint", str(tmp_path))
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("0 error(s), 0 warning(s); skipped 2 YAML file(s) without a "
                              "top-level `loaderkit:` key"), result.stderr


@pytest.mark.parametrize("fmt", ["json", "github", "sarif"])
def test_lint_machine_formats_say_the_skipped_count_on_stderr_only(
        fmt: str, tmp_path: Path, write: Any) -> None:
    project(write, BAD)
    result = loaderkit("lint", "--format", fmt, str(tmp_path))
    assert result.returncode == 1
    if fmt == "github":
        assert result.stdout.startswith("::error file=") and len(result.stdout.splitlines()) == 1
        assert "recipes/train.yaml" in result.stdout
    else:
        document = json.loads(result.stdout)  # nothing but the document on stdout
        items = document if fmt == "json" else document["runs"][0]["results"]
        assert [i["code"] if fmt == "json" else i["ruleId"] for i in items] == ["LK201"]
    assert "skipped 2 YAML file(s)" in result.stderr


def test_lint_directory_without_skipped_files_says_nothing_of_skipping(write: Any,
                                                                      tmp_path: Path) -> None:
    write("train.yaml", HEAD)
    result = loaderkit("lint", "--format", "json", str(tmp_path))
    assert result.stderr == "" and json.loads(result.stdout) == []


def test_lint_file_named_on_the_command_line_is_a_recipe_whatever_it_holds(
        tmp_path: Path, write: Any) -> None:
    project(write)
    result = loaderkit("lint", str(tmp_path / ".pre-commit-config.yaml"))
    assert result.returncode == 1
    assert "error LK203 missing required key 'loaderkit'" in result.stdout
    assert "skipped" not in result.stderr


def test_lint_skip_non_recipes_skips_named_files_without_a_loaderkit_key(
        tmp_path: Path, write: Any) -> None:
    project(write, BAD)
    named = [str(tmp_path / n) for n in ("recipes/train.yaml", ".github/workflows/ci.yml",
                                          ".pre-commit-config.yaml")]
    result = loaderkit("lint", "--skip-non-recipes", "--format", "json", *named)
    assert [i["code"] for i in json.loads(result.stdout)] == ["LK201"]
    assert "skipped 2 YAML file(s)" in result.stderr


def test_the_shipped_pre_commit_hook_lints_only_the_staged_recipes(tmp_path: Path,
                                                                   write: Any) -> None:
    # pre-commit hands the hook every staged file its `files` pattern matches, by name.
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    [hook] = [h for h in hooks if h["id"] == "loaderkit-lint"]
    project(write)
    staged = [p for p in sorted(tmp_path.rglob("*")) if re.search(hook["files"], p.name)]
    assert len(staged) == 3
    program, *arguments = shlex.split(hook["entry"])
    assert program == "loaderkit"
    result = loaderkit(*arguments, *map(str, staged))
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_directory_still_reports_a_recipe_with_a_syntax_error(tmp_path: Path,
                                                                  write: Any) -> None:
    write("broken.yaml", "loaderkit: 1\nsource:\n\turi: x\n")  # tab: LK001
    write("notes.yaml", "items: [\n")  # broken, and no recipe: skipped
    result = loaderkit("lint", "--format", "json", str(tmp_path))
    assert [(Path(i["file"]).name, i["code"]) for i in json.loads(result.stdout)] == [
        ("broken.yaml", "LK001")]
    assert "skipped 1 YAML file(s)" in result.stderr


def test_lint_of_the_shipped_recipes_directory_is_clean() -> None:
    result = loaderkit("lint", "recipes", cwd=REPO)
    assert result.returncode == 0, result.stdout
    assert "0 error(s)" in result.stderr and "skipped" not in result.stderr


def test_lint_several_paths_reports_each(write: Any) -> None:
    a, b = write("a.yaml", BAD), write("b.yaml", BAD)
    items = json.loads(loaderkit("lint", "--format", "json", str(a), str(b)).stdout)
    assert sorted(i["file"] for i in items) == [str(a), str(b)]


def test_lint_missing_file_is_a_diagnostic_exit_1(tmp_path: Path) -> None:
    result = loaderkit("lint", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "LK007" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("fmt", ["json", "github", "sarif"])
def test_lint_machine_formats_print_only_the_report(fmt: str, write: Any) -> None:
    result = loaderkit("lint", "--format", fmt, str(write("bad.yaml", BAD)))
    assert result.returncode == 1
    if fmt == "github":
        assert result.stdout.startswith("::error file=")
    else:
        json.loads(result.stdout)  # nothing but the document on stdout


def test_lint_relative_path_is_reported_as_given(tmp_path: Path, write: Any) -> None:
    write("recipes/bad.yaml", BAD)
    result = loaderkit("lint", "recipes", cwd=tmp_path)
    assert result.stdout.startswith("recipes/bad.yaml:5:3: error LK201")


def test_schema_prints_json_schema_and_exits_0() -> None:
    result = loaderkit("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "source" in schema["properties"] and "loaderkit" in schema["required"]


def test_lint_does_not_import_torch_or_lance(write: Any) -> None:
    path = write("bad.yaml", BAD + "transform: my_project.data:decode\n")
    script = textwrap.dedent(f"""
        import sys
        from loaderkit.cli import main
        code = main(["lint", {str(path)!r}])
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "lance", "lancedb"}})
        print("EXIT", code, "HEAVY", heavy)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.stdout.strip().splitlines()[-1] == "EXIT 1 HEAVY []", result.stdout
