"""`loaderkit build`: the graph, the safety report, --take, --json, --set, exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loaderkit import cli
from tests.safety.support import REPO, capture_fds, line_col, subprocess_env

Write = Callable[..., Path]

RECIPE = """\
loaderkit: 1
name: items
source:
  uri: {data}/items.lance
columns: [id, vec, score]
sampler:
  type: shuffle
  seed: 3
loader:
  batch_size: 16
"""
THROUGHPUT = re.compile(r"^took (\d+) batches, (\d+) rows in [\d.]+ s: start-up [\d.]+ s to "
                        r"the first batch, then [\d,]+ rows/s, [\d,.]+ MB/s over batches "
                        r"2-(\d+)$", re.MULTILINE)


def build(*args: str) -> tuple[int, str, str]:
    """Run `loaderkit build ARGS` in this process: (exit status, stdout, stderr)."""
    with capture_fds() as output:
        try:
            code = cli.main(["build", *args])
        except SystemExit as exc:  # argparse: the command was used wrongly
            code = int(exc.code or 0)
    return code, output.out, output.err


def build_json(*args: str) -> dict[str, Any]:
    code, out, _ = build(*args, "--json")
    assert code == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


def test_take_prints_the_graph(write_recipe: Write) -> None:
    code, out, _ = build(str(write_recipe(RECIPE)), "--take", "5")
    assert code == 0
    assert "loader: RecipeLoader (torch.utils.data.DataLoader)" in out
    assert "source: Lance dataset" in out and "sampler: shuffle" in out


def test_take_prints_start_up_and_the_steady_rate_apart(write_recipe: Write) -> None:
    _, out, _ = build(str(write_recipe(RECIPE)), "--take", "5")
    assert [m.groups() for m in THROUGHPUT.finditer(out)] == [("5", "80", "5")]


def test_take_of_one_batch_reports_start_up_and_no_steady_rate(write_recipe: Write) -> None:
    _, out, _ = build(str(write_recipe(RECIPE)), "--take", "1")
    assert re.search(r"^took 1 batches, 16 rows in [\d.]+ s: start-up [\d.]+ s to the first "
                     r"batch; no steady rate from one batch \(--take 2 or more\)$", out,
                     re.MULTILINE), out


# A transform that stands for a slow start: the first batch (row 0, in dataset order) waits.
SLOW_START = RECIPE.replace("  type: shuffle", "  type: full_scan") + \
    "transform: tests.build.slow_start:first_batch_waits\n"


def test_take_json_counts_the_wait_for_the_first_batch_as_start_up(write_recipe: Write) -> None:
    take = build_json(str(write_recipe(SLOW_START)), "--take", "5")["take"]
    assert take["first_batch_seconds"] >= 1.0
    assert take["steady_seconds"] == pytest.approx(take["seconds"] - take["first_batch_seconds"])
    # batches 2..5 only: the 16 rows of the first batch, and its wait, are left out
    assert take["steady_rows_per_second"] == pytest.approx(64 / take["steady_seconds"])
    assert take["steady_rows_per_second"] > take["rows_per_second"]


def test_take_json_keeps_its_keys_and_adds_the_steady_ones(write_recipe: Write) -> None:
    take = build_json(str(write_recipe(RECIPE)), "--take", "3")["take"]
    assert set(take) == {"batches", "rows", "seconds", "rows_per_second", "megabytes",
                         "first_batch_seconds", "steady_seconds", "steady_rows_per_second",
                         "steady_megabytes_per_second"}
    assert take["steady_megabytes_per_second"] > 0


def test_take_json_of_one_batch_has_a_null_steady_rate(write_recipe: Write) -> None:
    take = build_json(str(write_recipe(RECIPE)), "--take", "1")["take"]
    assert take["first_batch_seconds"] > 0
    assert take["steady_seconds"] is None and take["steady_rows_per_second"] is None


def test_graph_nodes_point_at_their_recipe_keys(write_recipe: Write) -> None:
    path = write_recipe(RECIPE)
    _, out, _ = build(str(path))
    line, _ = line_col(path, "sampler:")
    assert re.search(rf"sampler: shuffle .*\({re.escape(str(path))}:{line + 1}:3\)$", out,
                     re.MULTILINE)


def test_json_is_valid_and_has_graph_safety_and_take(write_recipe: Write) -> None:
    result = build_json(str(write_recipe(RECIPE)), "--take", "3")
    assert result["graph"]["kind"] == "loader"
    assert result["safety"]["num_workers"] == 0
    assert result["take"]["batches"] == 3 and result["take"]["rows"] == 48
    assert result["pinned_version"] == 4


def test_json_without_take_has_a_null_take(write_recipe: Write) -> None:
    assert build_json(str(write_recipe(RECIPE)))["take"] is None


def test_set_changes_the_batch_size(write_recipe: Write) -> None:
    result = build_json(str(write_recipe(RECIPE)), "--set", "loader.batch_size=7",
                        "--take", "2")
    assert result["graph"]["settings"]["batch_size"] == 7
    assert result["take"]["rows"] == 14


def test_set_of_an_unknown_key_is_an_error_at_the_override(write_recipe: Write) -> None:
    code, out, _ = build(str(write_recipe(RECIPE)), "--set", "loader.batch_sise=7")
    assert code == 1
    assert "<--set loader.batch_sise>" in out and "LK201" in out


def test_build_exits_0_when_built(write_recipe: Write) -> None:
    assert build(str(write_recipe(RECIPE)))[0] == 0


def test_build_exits_1_on_an_error_and_prints_it_located(write_recipe: Write) -> None:
    path = write_recipe(RECIPE.replace("items.lance", "itmes.lance"))
    code, out, _ = build(str(path))
    line, column = line_col(path, "uri:")
    assert code == 1
    assert out.startswith(f"{path}:{line}:{column}: error LK401 ")


def test_build_json_prints_errors_as_a_json_array(write_recipe: Write) -> None:
    path = write_recipe(RECIPE.replace("items.lance", "itmes.lance"))
    code, out, _ = build(str(path), "--json")
    assert code == 1
    assert [d["code"] for d in json.loads(out)] == ["LK401"]


def test_build_exits_0_with_only_warnings(write_recipe: Write) -> None:
    path = write_recipe(RECIPE + "  num_workers: 2\n")  # LK408: workers without transform
    code, out, _ = build(str(path), "--no-probe")
    assert code == 0 and "warning LK408" in out


def test_build_exits_2_on_an_unknown_flag(write_recipe: Write) -> None:
    assert build(str(write_recipe(RECIPE)), "--frobnicate")[0] == 2


@pytest.mark.parametrize("count", ["0", "-3", "five"])
def test_build_exits_2_on_a_take_that_is_not_a_positive_count(write_recipe: Write,
                                                              count: str) -> None:
    code, _, err = build(str(write_recipe(RECIPE)), "--take", count)
    assert code == 2 and "--take" in err


def test_build_exits_2_without_a_recipe_argument() -> None:
    # The real program, as a user runs it.
    result = subprocess.run([sys.executable, "-m", "loaderkit", "build"], capture_output=True,
                            text=True, env=subprocess_env(), timeout=60, check=False)
    assert result.returncode == 2
    assert "RECIPE" in result.stderr


# --- the recipes shipped in recipes/, over the demo data ----------------------------------

SHIPPED = sorted(p.name for p in (REPO / "recipes").glob("*.yaml")
                 if p.name != "remote_lancedb.yaml")  # needs a real LanceDB Cloud project


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of recipes/ beside a small `demo/` (what `loaderkit demo` writes)."""
    from loaderkit.demo import write_demo

    root = tmp_path_factory.mktemp("demo-project")
    write_demo(root / "demo", rows=2000)
    shutil.copytree(REPO / "recipes", root / "recipes")
    return root


def test_the_shipped_recipes_are_all_tested() -> None:
    assert len(SHIPPED) >= 6 and "train.yaml" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_builds(demo_project: Path, name: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(demo_project)  # the recipes name their data relative to the project
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    code, out, err = build(f"recipes/{name}", "--take", "1")
    assert code == 0, out + err
    assert re.search(r"^took 1 batches", out, re.MULTILINE), out


def _console_script() -> str:
    script = Path(sys.executable).parent / "loaderkit"
    if not script.exists():
        pytest.skip("the loaderkit console script is not installed beside this interpreter")
    return str(script)


@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_build_imports_a_transform_from_the_working_directory(
        tmp_path: Path, build_data: Path, how: str) -> None:
    (tmp_path / "mydata.py").write_text("def decode(batch):\n    return batch\n")
    (tmp_path / "r.yaml").write_text(f"loaderkit: 1\nsource:\n  uri: {build_data}/items.lance\n"
                                     "columns: [id]\ntransform: mydata:decode\n")
    command = [_console_script()] if how == "console script" else [sys.executable, "-m",
                                                                   "loaderkit"]
    env = {k: v for k, v in subprocess_env().items() if k != "PYTHONPATH"}
    result = subprocess.run([*command, "build", "r.yaml", "--take", "1"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_version_is_answered_both_ways(how: str) -> None:
    command = [_console_script()] if how == "console script" else [sys.executable, "-m",
                                                                   "loaderkit"]
    result = subprocess.run([*command, "--version"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "loaderkit 0.1.0"


def test_every_argument_has_help() -> None:
    import argparse

    parser = cli._parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    parsers = [parser, *subparsers[0].choices.values()]
    for each in parsers:
        for action in each._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{each.prog}: {action.option_strings or action.dest} has no help"


def test_demo_writes_a_recipe_whose_schema_comment_resolves_and_prints_no_lance_log(
        tmp_path: Path) -> None:
    env = {k: v for k, v in subprocess_env().items() if k not in ("LANCE_LOG", "LANCEDB_LOG")}
    result = subprocess.run([sys.executable, "-m", "loaderkit", "demo", "--rows", "500",
                             "--take", "1"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN" not in result.stderr
    recipe = tmp_path / "demo" / "demo.yaml"
    schema = re.search(r"\$schema=(\S+)", recipe.read_text())
    assert schema is not None and (recipe.parent / schema.group(1)).is_file()
