"""Scripts, run the way users run them: as `__main__`, in a real interpreter.

A script that starts the loader from its top level without a main guard, and a script
whose connection factory is defined in `__main__`, each get one clear message, and no
worker process is started for them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from .conftest import SAFE_RECIPE
from .support import line_col, subprocess_env

Write = Callable[[str], Path]
TIMEOUT = 180

# Instrumentation for the scripts below: count process starts (every start still happens).
COUNT_STARTS = """\
import atexit, sys
import multiprocessing.process as _mpp
_starts = []
_start = _mpp.BaseProcess.start
def _counted(self):
    _starts.append(self)
    _start(self)
_mpp.BaseProcess.start = _counted
atexit.register(lambda: print(f"process starts: {len(_starts)}", file=sys.stderr))
"""

BOOTSTRAP_WALL = "bootstrapping phase"


def run_script(directory: Path, name: str, body: str) -> subprocess.CompletedProcess[str]:
    script = directory / name
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], cwd=directory, env=subprocess_env(),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def test_script_without_main_guard_gets_one_message_naming_it(
        write_recipe: Write, tmp_path: Path, secret: str) -> None:
    path = write_recipe(SAFE_RECIPE)
    result = run_script(tmp_path, "train_no_guard.py", COUNT_STARTS + f"""
from loaderkit import load_recipe

loader = load_recipe({str(path)!r})
for batch in loader:
    pass
print("finished")
""")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert output.count("train_no_guard.py starts DataLoader workers") == 1, output
    assert 'if __name__ == "__main__":' in output
    assert BOOTSTRAP_WALL not in output and "Traceback" not in output, output
    assert "process starts: 0" in output
    assert "finished" not in output


def test_script_with_main_guard_is_not_refused(write_recipe: Write, tmp_path: Path,
                                               secret: str) -> None:
    # The guard detection must not refuse the right way of writing the same script.
    # (--no-probe equivalent: only the compile runs; no loop, so no worker starts.)
    path = write_recipe(SAFE_RECIPE)
    result = run_script(tmp_path, "train_guarded.py", f"""
from loaderkit.compiler import compile_recipe

def main():
    compile_recipe({str(path)!r}, probe=False)
    print("built")

if __name__ == "__main__":
    main()
""")
    assert result.returncode == 0, result.stderr
    assert "built" in result.stdout


def test_factory_defined_in_main_gets_one_located_message(write_recipe: Write,
                                                          tmp_path: Path) -> None:
    path = write_recipe("""\
        loaderkit: 1
        source:
          uri: {data}/db
          table: items
          connection_factory: __main__:open_table
        columns: [id, score]
        transform: tests.safety.user_code:double_score
        loader:
          num_workers: 2
        """)
    result = run_script(tmp_path, "train_main_factory.py", COUNT_STARTS + f"""
import os

import lancedb

from loaderkit import RecipeError, load_recipe


def open_table(name):
    return lancedb.connect(os.environ["LK_TEST_DB"]).open_table(name)


def main():
    try:
        loader = load_recipe({str(path)!r})
    except RecipeError as exc:
        print(exc)
        return 1
    for batch in loader:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
""")
    line, column = line_col(path, "connection_factory:")
    errors = re.findall(r"^.*: error LK\d+ .*$", result.stdout, re.MULTILINE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert errors == [f"{path}:{line}:{column}: error LK501 '__main__:open_table' is defined "
                      "in __main__ (a script or notebook), which spawn workers cannot import"]
    assert "  hint: move it into an importable module" in result.stdout
    assert "process starts: 0" in result.stderr


def test_lambda_in_a_users_module_gets_one_located_message_from_build(
        tmp_path: Path, data_dir: Path) -> None:
    # A new user's project: a package with a lambda, a recipe, `loaderkit build`.
    package = tmp_path / "my_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "data.py").write_text("decode = lambda batch: batch\n")
    recipe = tmp_path / "train.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        loaderkit: 1
        source:
          uri: {data_dir}/items.lance
        columns: [id, score]
        transform: my_project.data:decode
        loader:
          num_workers: 2
        """))
    result = subprocess.run([sys.executable, "-m", "loaderkit", "build", "train.yaml"],
                            cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                            timeout=TIMEOUT, check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "train.yaml:5:12: error LK501 'my_project.data:decode' is a lambda, which pickle "
        "cannot ship",
        "  hint: define it with `def` at the top level of its module"]


def test_a_spawn_child_re_running_an_unguarded_script_prints_the_guard_message(
        tmp_path: Path) -> None:
    # The last line of defence, in the child: the bootstrap re-runs the script's top level.
    result = run_script(tmp_path, "rerun.py", """
import multiprocessing

from loaderkit.main_guard import refuse_if_bootstrapping

refuse_if_bootstrapping()  # what compile_recipe does first; a no-op in the parent


def work():
    print("child ran")


if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=work)
    child.start()
    child.join()
    print(f"child exit code {child.exitcode}")
""")
    assert "child exit code 1" in result.stdout
    assert "child ran" not in result.stdout
    assert result.stderr.count("rerun.py starts DataLoader workers") == 1
    assert 'if __name__ == "__main__":' in result.stderr
    assert BOOTSTRAP_WALL not in result.stderr
